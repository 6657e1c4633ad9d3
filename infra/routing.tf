# One HTTPS front that routes by path, as the local stack does (docs/architecture.md, "Why four functions"):
#
#   /v1/**:encrypt                → encrypt   (also :rawEncrypt, :asymmetricSign, :macSign: they make a ciphertext,
#                                              signature or tag with a key version)
#   /v1/**:decrypt                → decrypt   (also :rawDecrypt, :asymmetricDecrypt, :macVerify)
#   /health, /health/…            → healthCheck   (liveness, readiness, tasks:run, probe, EKM status)
#   /.well-known/…                → healthCheck   (the gateway JWKS)
#   everything else (/v1/…)       → keyAdmin      (which answers 404 for paths that are not part of the API)
#
# Why route_rules with path templates: a path_rule can only match a whole path or a prefix ending in "/*", so it
# cannot see the ":encrypt" at the end of a key's path; regex_match is not available to global external
# Application Load Balancers. Path templates are: "**" matches any number of path segments, and the literal
# ":encrypt" after it must end the path (the query string is not part of the match). The rules are evaluated by
# priority, lowest first.

resource "google_compute_region_network_endpoint_group" "fn" {
  for_each              = local.http_functions
  project               = var.project_id
  region                = var.region
  name                  = "${var.name_prefix}-${lower(each.key)}-neg"
  network_endpoint_type = "SERVERLESS"

  # A 2nd gen function is served by a Cloud Run service of the same name; serverless NEGs reach 2nd gen functions
  # through that service (cloud_function {} is for 1st gen only).
  cloud_run {
    service = google_cloudfunctions2_function.fn[each.key].name
  }
}

resource "google_compute_backend_service" "fn" {
  for_each              = local.http_functions
  project               = var.project_id
  name                  = "${var.name_prefix}-${lower(each.key)}"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  protocol              = "HTTPS"
  security_policy       = var.security_policy

  backend {
    group = google_compute_region_network_endpoint_group.fn[each.key].id
  }

  log_config {
    enable      = true
    sample_rate = 1.0
  }
}

resource "google_compute_url_map" "front" {
  project         = var.project_id
  name            = "${var.name_prefix}-front"
  default_service = google_compute_backend_service.fn["keyAdmin"].id

  host_rule {
    hosts        = ["*"]
    path_matcher = "openekm"
  }

  path_matcher {
    name            = "openekm"
    default_service = google_compute_backend_service.fn["keyAdmin"].id

    route_rules {
      priority = 10
      service  = google_compute_backend_service.fn["encrypt"].id
      match_rules {
        path_template_match = "/v1/**:encrypt"
      }
      match_rules {
        path_template_match = "/v1/**:rawEncrypt"
      }
      match_rules {
        path_template_match = "/v1/**:asymmetricSign"
      }
      match_rules {
        path_template_match = "/v1/**:macSign"
      }
    }

    route_rules {
      priority = 20
      service  = google_compute_backend_service.fn["decrypt"].id
      match_rules {
        path_template_match = "/v1/**:decrypt"
      }
      match_rules {
        path_template_match = "/v1/**:rawDecrypt"
      }
      match_rules {
        path_template_match = "/v1/**:asymmetricDecrypt"
      }
      match_rules {
        path_template_match = "/v1/**:macVerify"
      }
    }

    route_rules {
      priority = 30
      service  = google_compute_backend_service.fn["healthCheck"].id
      match_rules {
        full_path_match = "/health"
      }
      match_rules {
        prefix_match = "/health/"
      }
      match_rules {
        prefix_match = "/.well-known/"
      }
    }
  }

  # Google checks these when the URL map is created or changed, and refuses a map that routes them elsewhere;
  # test/infra checks them against the code's routing table too.

  test {
    description = "encrypt with a key"
    host        = var.domain
    path        = "/v1/projects/p/locations/l/keyRings/r/cryptoKeys/k:encrypt"
    service     = google_compute_backend_service.fn["encrypt"].id
  }

  test {
    description = "encrypt with a version"
    host        = var.domain
    path        = "/v1/projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1:encrypt"
    service     = google_compute_backend_service.fn["encrypt"].id
  }

  test {
    description = "decrypt"
    host        = var.domain
    path        = "/v1/projects/p/locations/l/keyRings/r/cryptoKeys/k:decrypt"
    service     = google_compute_backend_service.fn["decrypt"].id
  }

  test {
    description = "asymmetricSign"
    host        = var.domain
    path        = "/v1/projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1:asymmetricSign"
    service     = google_compute_backend_service.fn["encrypt"].id
  }

  test {
    description = "asymmetricDecrypt"
    host        = var.domain
    path        = "/v1/projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1:asymmetricDecrypt"
    service     = google_compute_backend_service.fn["decrypt"].id
  }

  test {
    description = "a public key"
    host        = var.domain
    path        = "/v1/projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1/publicKey"
    service     = google_compute_backend_service.fn["keyAdmin"].id
  }

  test {
    description = "a key"
    host        = var.domain
    path        = "/v1/projects/p/locations/l/keyRings/r/cryptoKeys/k"
    service     = google_compute_backend_service.fn["keyAdmin"].id
  }

  test {
    description = "an IAM method"
    host        = var.domain
    path        = "/v1/projects/p/locations/l/keyRings/r/cryptoKeys/k:setIamPolicy"
    service     = google_compute_backend_service.fn["keyAdmin"].id
  }

  test {
    description = "liveness"
    host        = var.domain
    path        = "/health"
    service     = google_compute_backend_service.fn["healthCheck"].id
  }

  test {
    description = "the scheduled probe"
    host        = var.domain
    path        = "/health/probe"
    service     = google_compute_backend_service.fn["healthCheck"].id
  }

  test {
    description = "the gateway JWKS"
    host        = var.domain
    path        = "/.well-known/openekm/jwks.json"
    service     = google_compute_backend_service.fn["healthCheck"].id
  }
}

resource "google_compute_managed_ssl_certificate" "front" {
  project = var.project_id
  name    = "${var.name_prefix}-cert"

  managed {
    domains = [var.domain]
  }
}

resource "google_compute_target_https_proxy" "front" {
  project          = var.project_id
  name             = "${var.name_prefix}-https"
  url_map          = google_compute_url_map.front.id
  ssl_certificates = [google_compute_managed_ssl_certificate.front.id]
}

resource "google_compute_global_address" "front" {
  project = var.project_id
  name    = "${var.name_prefix}-ip"
}

resource "google_compute_global_forwarding_rule" "https" {
  project               = var.project_id
  name                  = "${var.name_prefix}-https"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  target                = google_compute_target_https_proxy.front.id
  ip_address            = google_compute_global_address.front.id
  port_range            = "443"
}

# Plain HTTP only redirects to HTTPS.
resource "google_compute_url_map" "redirect" {
  project = var.project_id
  name    = "${var.name_prefix}-redirect"

  default_url_redirect {
    https_redirect = true
    strip_query    = false
  }
}

resource "google_compute_target_http_proxy" "redirect" {
  project = var.project_id
  name    = "${var.name_prefix}-http"
  url_map = google_compute_url_map.redirect.id
}

resource "google_compute_global_forwarding_rule" "http" {
  project               = var.project_id
  name                  = "${var.name_prefix}-http"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  target                = google_compute_target_http_proxy.redirect.id
  ip_address            = google_compute_global_address.front.id
  port_range            = "80"
}
