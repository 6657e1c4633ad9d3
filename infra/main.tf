# OpenEKM on Google Cloud: what is deployed for each function, and the configuration they all read.
#
# local.functions is the one list of functions. Everything per function — its service account, its roles, the
# secrets it mounts and may read, its backend on the load balancer — is derived from it, so adding a function or
# a secret is one edit here. test/infra/terraform.test.ts checks this list against the code (functions/index.ts,
# shared/api/routes.ts, shared/config.ts).

locals {
  base_url = "https://${var.domain}"

  # trigger: "http" — served through the load balancer; "pubsub" — a CloudEvent function on the probe topic.
  # firestore: the function reads or writes Firestore (roles/datastore.user).
  # secrets: the secret groups it mounts (static_secret_mounts below, plus "ekm_credentials" for every secret in
  # var.ekm_credential_secrets). Each function loads the whole configuration at start (shared/config.ts): the root
  # keys are required, and the EKM endpoints' credential files and the signing key are read whenever they are
  # configured, so every function mounts all three today.
  functions = {
    keyAdmin = {
      entry_point = "keyAdmin"
      description = "OpenEKM key administration: key rings, keys, versions, IAM policies (Cloud KMS REST v1)"
      trigger     = "http"
      firestore   = true
      secrets     = ["root_keys", "signing_keys", "ekm_credentials"]
      memory      = "512Mi"
      cpu         = "1"
      timeout     = 60
    }
    encrypt = {
      entry_point = "encrypt"
      description = "OpenEKM encrypt (SOFTWARE and EXTERNAL keys)"
      trigger     = "http"
      firestore   = true
      secrets     = ["root_keys", "signing_keys", "ekm_credentials"]
      memory      = "512Mi"
      cpu         = "1"
      timeout     = 60
    }
    decrypt = {
      entry_point = "decrypt"
      description = "OpenEKM decrypt (SOFTWARE and EXTERNAL keys)"
      trigger     = "http"
      firestore   = true
      secrets     = ["root_keys", "signing_keys", "ekm_credentials"]
      memory      = "512Mi"
      cpu         = "1"
      timeout     = 60
    }
    healthCheck = {
      entry_point = "healthCheck"
      description = "OpenEKM health, readiness, the gateway JWKS, scheduled tasks and EKM probes"
      trigger     = "http"
      firestore   = true
      secrets     = ["root_keys", "signing_keys", "ekm_credentials"]
      memory      = "512Mi"
      cpu         = "1"
      timeout     = 300
    }
    healthProbe = {
      entry_point = "healthProbe"
      description = "OpenEKM EKM probes and scheduled tasks, triggered by a Pub/Sub message"
      trigger     = "pubsub"
      firestore   = true
      secrets     = ["root_keys", "signing_keys", "ekm_credentials"]
      memory      = "512Mi"
      cpu         = "1"
      timeout     = 300
    }
  }

  http_functions = { for name, f in local.functions : name => f if f.trigger == "http" }

  # Secrets mounted as files. A secret volume shadows its whole directory, so each secret has its own.
  static_secret_mounts = {
    root_keys = {
      group      = "root_keys"
      secret     = google_secret_manager_secret.root_keys.secret_id
      mount_path = "/etc/openekm/root-keys"
      file       = "root-keys"
    }
    signing_keys = {
      group      = "signing_keys"
      secret     = google_secret_manager_secret.signing_keys.secret_id
      mount_path = "/etc/openekm/signing-keys"
      file       = "signing-keys.json"
    }
  }

  ekm_credential_mounts = {
    for name in var.ekm_credential_secrets : "ekm-${name}" => {
      group      = "ekm_credentials"
      secret     = google_secret_manager_secret.ekm_credential[name].secret_id
      mount_path = "/etc/openekm/ekm/${name}"
      file       = "value"
    }
  }

  secret_mounts = merge(local.static_secret_mounts, local.ekm_credential_mounts)

  # Per function: exactly the mounts of the groups it lists. The function mounts these and its service account may
  # read these secrets and no others (iam.tf).
  secret_mounts_by_function = {
    for name, f in local.functions : name => {
      for id, m in local.secret_mounts : id => m if contains(f.secrets, m.group)
    }
  }

  secret_readers = merge([
    for name, mounts in local.secret_mounts_by_function : {
      for id, m in mounts : "${name}/${id}" => { function = name, secret = m.secret }
    }
  ]...)

  gateway_identity = coalesce(var.gateway_identity, "openekm@${var.domain}")
  gateway_issuer   = coalesce(var.gateway_issuer, local.base_url)

  # Google-signed ID tokens for this service: Cloud Scheduler's OIDC tokens, and callers using
  # `gcloud auth print-identity-token --audiences=https://<domain>` (service accounts or impersonation).
  google_issuer = {
    issuer    = "https://accounts.google.com"
    audiences = [local.base_url]
    jwksUrl   = "https://www.googleapis.com/oauth2/v3/certs"
  }

  # The environment of every function (docs/configuration.md). Secrets are files, never values here.
  gateway_env = {
    OPENEKM_ROOT_KEYS_FILE      = "/etc/openekm/root-keys/root-keys"
    OPENEKM_SIGNING_KEYS_FILE   = "/etc/openekm/signing-keys/signing-keys.json"
    OPENEKM_GATEWAY_IDENTITY    = local.gateway_identity
    OPENEKM_GATEWAY_ISSUER      = local.gateway_issuer
    OPENEKM_TRUSTED_ISSUERS     = jsonencode(concat([local.google_issuer], var.trusted_issuers))
    OPENEKM_FIRESTORE_PROJECT   = var.project_id
    OPENEKM_FIRESTORE_DATABASE  = var.firestore_database
    OPENEKM_EKM_ENDPOINTS       = jsonencode(var.ekm_endpoints)
    OPENEKM_EKM_QUOTA           = jsonencode(var.ekm_quota)
    OPENEKM_AUDIT_DATA_ACCESS   = tostring(var.audit_data_access)
    OPENEKM_PROJECT_OWNERS      = jsonencode(var.project_owners)
    OPENEKM_DEFAULT_OWNERS      = jsonencode(var.default_owners)
    OPENEKM_OPERATORS           = jsonencode(concat(["serviceAccount:${google_service_account.scheduler.email}"], var.operators))
    OPENEKM_LOG_LEVEL           = var.log_level
    OPENEKM_METADATA_CACHE_MS   = tostring(var.metadata_cache_ms)
    OPENEKM_REQUEST_DEADLINE_MS = tostring(var.request_deadline_ms)
    # The EKM probe and status page (being added: /health/probe, /health/ekm, /health/status).
    OPENEKM_PROBE_INTERVAL_SECONDS = tostring(var.probe_interval_seconds)
    OPENEKM_STATUS_PUBLIC          = tostring(var.status_public)
    OPENEKM_EKM_PROBE_KEY_PATH     = var.ekm_probe_key_path
  }

  function_env = merge(var.extra_env, local.gateway_env)
}

# The APIs the deployment uses. Left enabled when the deployment is destroyed.
resource "google_project_service" "apis" {
  for_each = toset([
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudscheduler.googleapis.com",
    "compute.googleapis.com",
    "eventarc.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
  ])
  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}
