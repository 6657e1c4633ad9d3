# What the operator and partner EKMs need after `terraform apply`.

output "base_url" {
  description = "Base URL of the Cloud KMS REST API (CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDKMS=<base_url>/)."
  value       = "${local.base_url}/"
}

output "lb_ip_address" {
  description = "The load balancer's IP address: point the domain's A record here; the managed certificate is issued once it resolves."
  value       = google_compute_global_address.front.address
}

output "gateway_identity" {
  description = "What a partner EKM must trust and allow for Google EKM endpoints with \"auth\": {\"type\": \"jwt\"} (docs/operator-guide.md)."
  value = {
    issuer                 = local.gateway_issuer
    subject                = local.gateway_identity
    email                  = local.gateway_identity
    jwks_url               = "${local.base_url}/.well-known/openekm/jwks.json"
    audience               = "the EKM's own origin (scheme://host[:port] of the endpoint prefix, no path)"
    token_lifetime_seconds = 300
  }
}

output "function_service_accounts" {
  description = "The service account of each function. For endpoints with \"auth\": {\"type\": \"google-id-token\"}, the EKM must allow the encrypt, decrypt and keyAdmin accounts (issuer https://accounts.google.com); healthCheck and healthProbe too if it should answer probes."
  value       = { for name, sa in google_service_account.fn : name => sa.email }
}

output "scheduler_service_account" {
  description = "The Cloud Scheduler job's identity; it is in OPENEKM_OPERATORS."
  value       = google_service_account.scheduler.email
}

output "secrets" {
  description = "Secret Manager secrets to fill before the functions can start (gcloud secrets versions add <id> --data-file=…)."
  value = merge(
    {
      root_keys    = google_secret_manager_secret.root_keys.secret_id
      signing_keys = google_secret_manager_secret.signing_keys.secret_id
    },
    { for name, s in google_secret_manager_secret.ekm_credential : "ekm/${name}" => s.secret_id },
  )
}

output "ekm_credential_files" {
  description = "Where each EKM credential secret is mounted: use these paths as {\"file\": …} refs in ekm_endpoints."
  value       = { for name in var.ekm_credential_secrets : name => "/etc/openekm/ekm/${name}/value" }
}

output "probe_topic" {
  description = "Pub/Sub topic whose messages run the healthProbe function (gcloud pubsub topics publish <topic> --message='{}')."
  value       = google_pubsub_topic.probe.id
}
