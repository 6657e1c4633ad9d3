# Every input of the deployment. infra/README.md has the same list as a table; test/infra checks that every
# variable has a description.

# --- Where ---------------------------------------------------------------------------------------------------

variable "project_id" {
  description = "Google Cloud project that runs the functions and holds the Firestore database, the secrets and the load balancer."
  type        = string
}

variable "region" {
  description = "Region of the functions, their serverless NEGs, the Cloud Scheduler jobs and the Eventarc trigger, e.g. europe-west1."
  type        = string
}

variable "firestore_location" {
  description = "Location of the Firestore database (a region such as europe-west1, or a multi-region such as eur3). Cannot be changed after creation."
  type        = string
}

variable "firestore_database" {
  description = "Firestore database id. \"(default)\" is the project's default database; any other id creates a named database and sets OPENEKM_FIRESTORE_DATABASE."
  type        = string
  default     = "(default)"
}

variable "name_prefix" {
  description = "Prefix of every resource name (functions, service accounts, secrets, load balancer parts). Lower-case letters, digits and hyphens, at most 12 characters."
  type        = string
  default     = "openekm"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,11}$", var.name_prefix))
    error_message = "name_prefix must be 1-12 lower-case letters, digits or hyphens, starting with a letter."
  }
}

variable "labels" {
  description = "Labels put on the functions, secrets and bucket."
  type        = map(string)
  default     = {}
}

# --- The HTTPS front --------------------------------------------------------------------------------------------

variable "domain" {
  description = "DNS name of the service, e.g. kms.example.com. The managed certificate is issued for it once its A record points at the load balancer's address (output lb_ip_address). The base URL is https://<domain>."
  type        = string
}

variable "security_policy" {
  description = "Optional Cloud Armor security policy (self link or name) attached to the four backend services. null: none."
  type        = string
  default     = null
}

# --- The code --------------------------------------------------------------------------------------------------

variable "source_zip" {
  description = "Path of the functions' source zip (dist/ plus package.json and package-lock.json), made by `npx tsx scripts/package-lambda.ts --gcf` (infra/README.md, \"Source\"). Its MD5 names the uploaded object, so a new build redeploys every function."
  type        = string
  default     = "../.openekm/function-source.zip"
}

variable "runtime" {
  description = "Cloud Functions runtime. The code targets Node.js 20 (package.json engines); check Google's runtime support schedule before deploying (see infra/README.md)."
  type        = string
  default     = "nodejs20"
}

variable "min_instances" {
  description = "Minimum instances per function (keyAdmin, encrypt, decrypt, healthCheck, healthProbe). Above 0 avoids cold starts (about 1.6 s measured) on the crypto path, at a cost."
  type        = map(number)
  default     = { keyAdmin = 0, encrypt = 1, decrypt = 1, healthCheck = 0, healthProbe = 0 }
}

variable "max_instances" {
  description = "Maximum instances per function (keyAdmin, encrypt, decrypt, healthCheck, healthProbe)."
  type        = map(number)
  default     = { keyAdmin = 10, encrypt = 100, decrypt = 100, healthCheck = 5, healthProbe = 1 }
}

variable "request_concurrency" {
  description = "Concurrent requests one instance of an HTTP function serves (Cloud Functions gen 2 max_instance_request_concurrency; above 1 needs a whole vCPU, which the functions get)."
  type        = number
  default     = 80
}

# --- Configuration of the gateway (docs/configuration.md) ------------------------------------------------------

variable "trusted_issuers" {
  description = "OPENEKM_TRUSTED_ISSUERS besides Google's: a list of {issuer, audiences, jwksUrl} objects whose tokens are accepted. Google-signed ID tokens with audience https://<domain> (what Cloud Scheduler and `gcloud auth print-identity-token --audiences` produce) are always trusted."
  type        = any
  default     = []
}

variable "project_owners" {
  description = "OPENEKM_PROJECT_OWNERS: map of KMS project id to the members that own it, e.g. { \"payments-prod\" = [\"user:ana@example.com\"] }."
  type        = map(list(string))
  default     = {}
}

variable "default_owners" {
  description = "OPENEKM_DEFAULT_OWNERS: members who own every KMS project. Set this or project_owners, or nobody can do anything."
  type        = list(string)
  default     = []
}

variable "operators" {
  description = "OPENEKM_OPERATORS besides the scheduler's service account (always added): members who may run the scheduled tasks and probes."
  type        = list(string)
  default     = []
}

variable "gateway_identity" {
  description = "OPENEKM_GATEWAY_IDENTITY: the email and subject of the gateway's tokens to EKMs, the principal partners grant keys to. null: openekm@<domain>."
  type        = string
  default     = null
}

variable "gateway_issuer" {
  description = "OPENEKM_GATEWAY_ISSUER: the iss of the gateway's tokens to EKMs. null: https://<domain>."
  type        = string
  default     = null
}

variable "ekm_endpoints" {
  description = "OPENEKM_EKM_ENDPOINTS as a list of endpoint objects (docs/configuration.md). SigV4 credentials are file refs to the mounted EKM credential secrets: {\"file\" = \"/etc/openekm/ekm/<name>/value\"}. Empty: no EXTERNAL key can be used."
  type        = any
  default     = []
}

variable "ekm_credential_secrets" {
  description = "Names of EKM credential secrets to create and mount (e.g. \"fortanix-xks-access-key-id\", \"fortanix-xks-secret-access-key\"): each becomes the secret <name_prefix>-ekm-<name>, mounted at /etc/openekm/ekm/<name>/value in every function that calls EKMs."
  type        = set(string)
  default     = []

  validation {
    condition     = alltrue([for n in var.ekm_credential_secrets : can(regex("^[a-z0-9][a-z0-9-]{0,39}$", n))])
    error_message = "Each EKM credential secret name must be 1-40 lower-case letters, digits or hyphens."
  }
}

variable "ekm_quota" {
  description = "OPENEKM_EKM_QUOTA: EKM crypto requests per second per project and location, e.g. { default = 100, projects = { p1 = 500 } }."
  type        = any
  default     = { default = 100 }
}

variable "audit_data_access" {
  description = "OPENEKM_AUDIT_DATA_ACCESS: write Data Access audit entries (reads, encrypt, decrypt). Admin Activity entries are always written."
  type        = bool
  default     = true
}

variable "log_level" {
  description = "OPENEKM_LOG_LEVEL: debug, info, warn or error."
  type        = string
  default     = "info"

  validation {
    condition     = contains(["debug", "info", "warn", "error"], var.log_level)
    error_message = "log_level must be debug, info, warn or error."
  }
}

variable "metadata_cache_ms" {
  description = "OPENEKM_METADATA_CACHE_MS: how long an instance serves key, version and policy metadata from memory (0-60000). Changes through other instances take effect within this bound."
  type        = number
  default     = 1000
}

variable "request_deadline_ms" {
  description = "OPENEKM_REQUEST_DEADLINE_MS: deadline of a request when the caller sends none. Keep it below the functions' timeout (60 s)."
  type        = number
  default     = 30000
}

variable "extra_env" {
  description = "Further environment variables for every function, e.g. OPENEKM_LIST_MAX_PAGE_SIZE. Overrides nothing that Terraform sets itself."
  type        = map(string)
  default     = {}
}

variable "vpc_connector" {
  description = "Optional Serverless VPC Access connector (projects/…/locations/…/connectors/…) for EKMs reachable only on a private network, e.g. the replicas of EKM connections; private ranges go through it. null: the functions reach EKMs over the internet."
  type        = string
  default     = null
}

# --- Scheduled work --------------------------------------------------------------------------------------------

variable "scheduled_path" {
  description = "Path the scheduler job POSTs to: /health/probe (probes every EKM target and finishes due destructions and rotations) or, for builds without the probe, /health/tasks:run (destructions and rotations only)."
  type        = string
  default     = "/health/probe"

  validation {
    condition     = contains(["/health/probe", "/health/tasks:run"], var.scheduled_path)
    error_message = "scheduled_path must be /health/probe or /health/tasks:run."
  }
}

variable "probe_schedule" {
  description = "Cron schedule (in time_zone) of the scheduled job. Every minute by default: the EKM status page's resolution."
  type        = string
  default     = "* * * * *"
}

variable "probe_trigger" {
  description = "Which scheduler job runs: \"http\" (POST <scheduled_path> through the load balancer with an OIDC token) or \"pubsub\" (publish to the probe topic, which runs the healthProbe function). The other job is created paused."
  type        = string
  default     = "http"

  validation {
    condition     = contains(["http", "pubsub"], var.probe_trigger)
    error_message = "probe_trigger must be http or pubsub."
  }
}

variable "probe_interval_seconds" {
  description = "OPENEKM_PROBE_INTERVAL_SECONDS: how often probe_schedule runs the probe, in seconds (60 for the default schedule). The status page marks a target UNKNOWN when its last probe is older than three intervals."
  type        = number
  default     = 60
}

variable "status_public" {
  description = "OPENEKM_STATUS_PUBLIC: whether GET /health/ekm and /health/status answer without a token (they show EKM endpoint prefixes and replica hosts)."
  type        = bool
  default     = false
}

variable "ekm_probe_key_path" {
  description = "OPENEKM_EKM_PROBE_KEY_PATH: the dedicated key (path on the EKM, e.g. v0/keys/openekm-probe) the probe wraps with on Google EKM connection replicas; never a customer key. Empty: not set."
  type        = string
  default     = ""
}

variable "time_zone" {
  description = "Time zone of the scheduler jobs (IANA name)."
  type        = string
  default     = "Etc/UTC"
}

# --- Backups ---------------------------------------------------------------------------------------------------

variable "point_in_time_recovery" {
  description = "Enable Firestore point-in-time recovery (7 days of versions, read with gcloud or the client libraries)."
  type        = bool
  default     = true
}

variable "deletion_protection" {
  description = "Protect the Firestore database from deletion (Terraform and API)."
  type        = bool
  default     = true
}
