# The five functions (Cloud Functions gen 2), one service account each, and their source.

# --- Source ------------------------------------------------------------------------------------------------------
# A zip of dist/ (compiled by `npm run build`) plus package.json and package-lock.json; Cloud Build installs the
# dependencies. Make it with `npx tsx scripts/package-lambda.ts --gcf` (infra/README.md, "Source").

resource "google_storage_bucket" "source" {
  project                     = var.project_id
  name                        = "${var.project_id}-${var.name_prefix}-source"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true
  labels                      = var.labels

  lifecycle_rule {
    condition {
      age = 30
    }
    action {
      type = "Delete"
    }
  }
}

resource "google_storage_bucket_object" "source" {
  name   = "function-source-${filemd5(var.source_zip)}.zip"
  bucket = google_storage_bucket.source.name
  source = var.source_zip
}

# --- Identities --------------------------------------------------------------------------------------------------

# One service account per function; iam.tf grants each exactly what its entry in local.functions asks for.
resource "google_service_account" "fn" {
  for_each     = local.functions
  project      = var.project_id
  account_id   = "${var.name_prefix}-${lower(each.key)}"
  display_name = "OpenEKM ${each.key} function"
}

# Cloud Build runs the functions' builds as this account instead of the project's default compute account.
resource "google_service_account" "build" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-build"
  display_name = "OpenEKM function builds"
}

# --- Functions ---------------------------------------------------------------------------------------------------

resource "google_cloudfunctions2_function" "fn" {
  for_each    = local.functions
  project     = var.project_id
  location    = var.region
  name        = "${var.name_prefix}-${lower(each.key)}"
  description = each.value.description
  labels      = var.labels

  build_config {
    runtime         = var.runtime
    entry_point     = each.value.entry_point
    service_account = google_service_account.build.id
    # dist/ is already compiled: do not let the buildpack run package.json's "build" script (it needs the
    # TypeScript sources and dev dependencies, which the zip does not carry).
    environment_variables = {
      GOOGLE_NODE_RUN_SCRIPTS = ""
    }
    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    service_account_email = google_service_account.fn[each.key].email
    # HTTP functions take traffic only from the load balancer (and inside the project's network); the
    # Pub/Sub-triggered probe only from inside Google Cloud (Eventarc).
    ingress_settings                 = each.value.trigger == "http" ? "ALLOW_INTERNAL_AND_GCLB" : "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision   = true
    available_memory                 = each.value.memory
    available_cpu                    = each.value.cpu
    timeout_seconds                  = each.value.timeout
    min_instance_count               = lookup(var.min_instances, each.key, 0)
    max_instance_count               = lookup(var.max_instances, each.key, 10)
    max_instance_request_concurrency = each.value.trigger == "http" ? var.request_concurrency : 1
    environment_variables            = local.function_env
    vpc_connector                    = var.vpc_connector
    vpc_connector_egress_settings    = var.vpc_connector == null ? null : "PRIVATE_RANGES_ONLY"

    dynamic "secret_volumes" {
      for_each = local.secret_mounts_by_function[each.key]
      content {
        mount_path = secret_volumes.value.mount_path
        project_id = var.project_id
        secret     = secret_volumes.value.secret
        versions {
          version = "latest"
          path    = secret_volumes.value.file
        }
      }
    }
  }

  dynamic "event_trigger" {
    for_each = each.value.trigger == "pubsub" ? [google_pubsub_topic.probe.id] : []
    content {
      trigger_region        = var.region
      event_type            = "google.cloud.pubsub.topic.v1.messagePublished"
      pubsub_topic          = event_trigger.value
      retry_policy          = "RETRY_POLICY_DO_NOT_RETRY"
      service_account_email = google_service_account.probe_trigger.email
    }
  }

  depends_on = [
    google_project_service.apis,
    google_project_iam_member.build,
    google_secret_manager_secret_iam_member.readers,
  ]
}
