# Scheduled work: every minute (var.probe_schedule) something asks OpenEKM to probe every EKM target and finish
# due destructions and rotations. Two ways, one active (var.probe_trigger), the other created paused:
#
# - http: Cloud Scheduler POSTs var.scheduled_path (/health/probe, or the older /health/tasks:run) through the
#   load balancer with an OIDC token of the scheduler service account, which is in OPENEKM_OPERATORS.
# - pubsub: Cloud Scheduler publishes to the probe topic; Eventarc runs the healthProbe CloudEvent function.

resource "google_pubsub_topic" "probe" {
  project = var.project_id
  name    = "${var.name_prefix}-probe"
  labels  = var.labels

  # A missed probe is superseded by the next one a minute later.
  message_retention_duration = "600s"

  depends_on = [google_project_service.apis]
}

resource "google_cloud_scheduler_job" "probe_http" {
  project          = var.project_id
  region           = var.region
  name             = "${var.name_prefix}-probe-http"
  description      = "POST ${var.scheduled_path}: probe EKM targets, finish due destructions and rotations"
  schedule         = var.probe_schedule
  time_zone        = var.time_zone
  paused           = var.probe_trigger != "http"
  attempt_deadline = "300s"

  retry_config {
    retry_count = 0
  }

  http_target {
    http_method = "POST"
    uri         = "${local.base_url}${var.scheduled_path}"
    headers = {
      "Content-Type" = "application/json"
    }
    body = base64encode("{}")

    oidc_token {
      service_account_email = google_service_account.scheduler.email
      audience              = local.base_url
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_cloud_scheduler_job" "probe_pubsub" {
  project     = var.project_id
  region      = var.region
  name        = "${var.name_prefix}-probe-pubsub"
  description = "Publish to the probe topic: the healthProbe function probes EKM targets and finishes due work"
  schedule    = var.probe_schedule
  time_zone   = var.time_zone
  paused      = var.probe_trigger != "pubsub"

  pubsub_target {
    topic_name = google_pubsub_topic.probe.id
    data       = base64encode("{}")
  }

  depends_on = [google_project_service.apis]
}
