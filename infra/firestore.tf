# Firestore in native mode, the indexes the code's queries need, and the TTL policy of the EKM quota documents.

resource "google_firestore_database" "main" {
  project                           = var.project_id
  name                              = var.firestore_database
  location_id                       = var.firestore_location
  type                              = "FIRESTORE_NATIVE"
  concurrency_mode                  = "PESSIMISTIC"
  point_in_time_recovery_enablement = var.point_in_time_recovery ? "POINT_IN_TIME_RECOVERY_ENABLED" : "POINT_IN_TIME_RECOVERY_DISABLED"
  delete_protection_state           = var.deletion_protection ? "DELETE_PROTECTION_ENABLED" : "DELETE_PROTECTION_DISABLED"
  deletion_policy                   = var.deletion_protection ? "ABANDON" : "DELETE"

  depends_on = [google_project_service.apis]
}

# Collection-group single-field indexes. Firestore indexes single fields automatically only for queries on one
# collection; the scheduled job queries every collection of a name at once (Store.findAtMost in
# shared/store/firestore.ts: collectionGroup(c).where(field, '<=', now)).

# finishDueDestructions (shared/operations/cryptoKeyVersions.ts): versions whose destroyTime has passed.
resource "google_firestore_field" "version_destroy_time" {
  project    = var.project_id
  database   = google_firestore_database.main.name
  collection = "cryptoKeyVersions"
  field      = "destroyTime"

  index_config {
    indexes {
      order       = "ASCENDING"
      query_scope = "COLLECTION_GROUP"
    }
  }
}

# finishPendingVersions (shared/operations/coordinated.ts): coordinated-key versions waiting for an EKM step
# (PENDING_GENERATION, PENDING_EXTERNAL_DESTRUCTION) since pendingSince.
resource "google_firestore_field" "version_pending_since" {
  project    = var.project_id
  database   = google_firestore_database.main.name
  collection = "cryptoKeyVersions"
  field      = "pendingSince"

  depends_on = [google_firestore_field.version_destroy_time]

  index_config {
    indexes {
      order       = "ASCENDING"
      query_scope = "COLLECTION_GROUP"
    }
  }
}

# rotateDueKeys (shared/operations/scheduled.ts): keys whose nextRotationTime has passed.
resource "google_firestore_field" "key_next_rotation_time" {
  project    = var.project_id
  database   = google_firestore_database.main.name
  collection = "cryptoKeys"
  field      = "nextRotationTime"

  # The field changes run one after another: concurrent field operations on one database can be refused.
  depends_on = [google_firestore_field.version_pending_since]

  index_config {
    indexes {
      order       = "ASCENDING"
      query_scope = "COLLECTION_GROUP"
    }
  }
}

# The EKM quota's per-second shard documents (shared/quota/ekm-quota.ts, collection openekmQuota) carry expireAt,
# an hour after their second: this TTL policy deletes them. The field is never queried, so it is not indexed.
resource "google_firestore_field" "quota_expire_at" {
  project    = var.project_id
  database   = google_firestore_database.main.name
  collection = "openekmQuota"
  field      = "expireAt"

  depends_on = [google_firestore_field.key_next_rotation_time]

  ttl_config {}
  index_config {}
}
