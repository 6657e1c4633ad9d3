# Terraform and provider versions. The google provider is pinned to the 6.x line: the URL map's path templates
# (routing.tf), Cloud Functions gen 2 secret volumes and Firestore TTL fields are all in 6.x.
terraform {
  required_version = ">= 1.5"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.0"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}
