# Secret Manager secrets: declared here, their values never. Add a version to each before the first full apply
# (infra/README.md, "First deployment"); the functions mount the latest version as a file.

# OPENEKM_ROOT_KEYS_FILE: "id:base64,id:base64" or one entry per line — the first seals new key material, the
# others only open material sealed earlier (docs/operator-guide.md, "Rotating the root key").
resource "google_secret_manager_secret" "root_keys" {
  project   = var.project_id
  secret_id = "${var.name_prefix}-root-keys"
  labels    = var.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

# OPENEKM_SIGNING_KEYS_FILE: a JWKS of private ES256/RS256 keys with a kid; the first signs the gateway's tokens to
# EKMs, all are published at /.well-known/openekm/jwks.json.
resource "google_secret_manager_secret" "signing_keys" {
  project   = var.project_id
  secret_id = "${var.name_prefix}-signing-keys"
  labels    = var.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}

# EKM credentials, e.g. an XKS proxy's SigV4 access key id and secret access key: one secret per value, referenced
# from var.ekm_endpoints as {"file": "/etc/openekm/ekm/<name>/value"}.
resource "google_secret_manager_secret" "ekm_credential" {
  for_each  = var.ekm_credential_secrets
  project   = var.project_id
  secret_id = "${var.name_prefix}-ekm-${each.value}"
  labels    = var.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.apis]
}
