# Who may do what. Each function's service account gets exactly what its entry in local.functions (main.tf) asks
# for: Firestore only where firestore = true, each secret only where the function mounts it, and log writing.

resource "google_project_iam_member" "datastore" {
  for_each = { for name, f in local.functions : name => f if f.firestore }
  project  = var.project_id
  role     = "roles/datastore.user"
  member   = "serviceAccount:${google_service_account.fn[each.key].email}"
}

resource "google_project_iam_member" "log_writer" {
  for_each = local.functions
  project  = var.project_id
  role     = "roles/logging.logWriter"
  member   = "serviceAccount:${google_service_account.fn[each.key].email}"
}

# Read access to exactly the secrets each function mounts, granted on the secret (not the project).
resource "google_secret_manager_secret_iam_member" "readers" {
  for_each  = local.secret_readers
  project   = var.project_id
  secret_id = each.value.secret
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.fn[each.value.function].email}"
}

# Builds of the functions' containers.
resource "google_project_iam_member" "build" {
  for_each = toset(["roles/cloudbuild.builds.builder", "roles/logging.logWriter"])
  project  = var.project_id
  role     = each.value
  member   = "serviceAccount:${google_service_account.build.email}"
}

# The HTTP functions are invocable by anyone *through the load balancer only*: a serverless NEG cannot present an
# identity, so the Cloud Run invoker check is opened, and ingress_settings = ALLOW_INTERNAL_AND_GCLB (functions.tf)
# refuses every request that does not come through the load balancer or the project's network. OpenEKM itself
# authenticates every KMS call (Bearer token, IAM); /health, /health/ready and the gateway JWKS are public by design.
resource "google_cloud_run_service_iam_member" "public_via_lb" {
  for_each = local.http_functions
  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.fn[each.key].name
  role     = "roles/run.invoker"
  member   = "allUsers"
}

# --- Scheduled work ----------------------------------------------------------------------------------------------

# Cloud Scheduler's identity: its OIDC tokens call POST /health/probe (or /health/tasks:run), so its email is in
# OPENEKM_OPERATORS (main.tf). It needs no Google Cloud role.
resource "google_service_account" "scheduler" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-scheduler"
  display_name = "OpenEKM scheduled probe (Cloud Scheduler)"
}

# Eventarc delivers the probe topic's messages to healthProbe as this account.
resource "google_service_account" "probe_trigger" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-probe-trigger"
  display_name = "OpenEKM probe topic trigger (Eventarc)"
}

resource "google_cloud_run_service_iam_member" "probe_trigger" {
  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.fn["healthProbe"].name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.probe_trigger.email}"
}

resource "google_project_iam_member" "probe_trigger_receiver" {
  project = var.project_id
  role    = "roles/eventarc.eventReceiver"
  member  = "serviceAccount:${google_service_account.probe_trigger.email}"
}
