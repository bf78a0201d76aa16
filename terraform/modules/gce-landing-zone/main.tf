# GCP landing zone for burst's `gce` provider: the VPC GKE clusters go into, the service account
# their nodes run as, and the service account burst itself runs as. burst creates and deletes the
# GKE clusters; nothing here is touched by burst at run time.

locals {
  # The permissions burst_gce's calls need (providers/gce/README.md, "GCP roles").
  burst_permissions = [
    "container.clusters.create",
    "container.clusters.delete",
    "container.clusters.get",
    "container.clusters.list",
    "container.clusters.update",
    "container.operations.get",
    "container.operations.list",
  ]
  # The Compute Engine permissions of node release (burst_gce's remove_nodes): read the node pool's
  # managed instance group and its instances, and instanceGroupManagers.deleteInstances. No
  # container.* role holds them; Compute deletes the VMs itself, so no compute.instances.* is needed.
  burst_node_release_permissions = [
    "compute.instanceGroupManagers.get",
    "compute.instanceGroupManagers.update",
  ]
  burst_role = var.burst_role == "custom" ? google_project_iam_custom_role.burst[0].id : var.burst_role
}

resource "google_project_service" "this" {
  for_each = toset(["compute.googleapis.com", "container.googleapis.com"])
  project  = var.project
  service  = each.value
  # Other workloads in the project may use these APIs: never switch them off on destroy.
  disable_on_destroy = false
}

resource "google_compute_network" "this" {
  project                 = var.project
  name                    = var.name
  auto_create_subnetworks = false
  depends_on              = [google_project_service.this]
}

resource "google_compute_subnetwork" "this" {
  project                  = var.project
  name                     = "${var.name}-${var.region}"
  region                   = var.region
  network                  = google_compute_network.this.id
  ip_cidr_range            = var.nodes_cidr
  private_ip_google_access = true

  secondary_ip_range {
    range_name    = "${var.name}-pods"
    ip_cidr_range = var.pods_cidr
  }
  secondary_ip_range {
    range_name    = "${var.name}-services"
    ip_cidr_range = var.services_cidr
  }

  lifecycle {
    # GKE adds its own secondary ranges to the subnetwork for clusters that do not name one
    # (burst_gce does not set ipAllocationPolicy); Terraform must not remove them.
    ignore_changes = [secondary_ip_range]
  }
}

resource "google_compute_router" "this" {
  count   = var.enable_nat ? 1 : 0
  project = var.project
  name    = "${var.name}-${var.region}"
  region  = var.region
  network = google_compute_network.this.id
}

resource "google_compute_router_nat" "this" {
  count                              = var.enable_nat ? 1 : 0
  project                            = var.project
  name                               = "${var.name}-${var.region}"
  router                             = google_compute_router.this[0].name
  region                             = var.region
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "LIST_OF_SUBNETWORKS"
  subnetwork {
    name                    = google_compute_subnetwork.this.id
    source_ip_ranges_to_nat = ["ALL_IP_RANGES"]
  }
}

# ---------------------------------------------------------------------------------------------
# Node service account: burst's `service_account`. Least privilege instead of the Compute Engine
# default service account (project Editor).

resource "google_service_account" "nodes" {
  project      = var.project
  account_id   = "${var.name}-nodes"
  display_name = "burst GKE nodes"
  description  = "Nodes of the GKE clusters burst creates"
}

resource "google_project_iam_member" "nodes" {
  project = var.project
  role    = "roles/container.defaultNodeServiceAccount"
  member  = "serviceAccount:${google_service_account.nodes.email}"
}

# ---------------------------------------------------------------------------------------------
# burst's own service account. Give burst its credentials as application-default credentials:
# Workload Identity / the metadata server when burst runs on GCP, otherwise a key made out of band
# (a key made here would sit in the Terraform state).

resource "google_service_account" "burst" {
  project      = var.project
  account_id   = "${var.name}-controller"
  display_name = "burst"
  description  = "The identity burst creates, resizes and deletes GKE clusters as"
}

resource "google_project_iam_custom_role" "burst" {
  count       = var.burst_role == "custom" ? 1 : 0
  project     = var.project
  role_id     = replace("${var.name}_controller", "-", "_")
  title       = "burst controller"
  description = "Exactly the container.* permissions burst_gce uses"
  permissions = local.burst_permissions
}

resource "google_project_iam_member" "burst" {
  project = var.project
  role    = local.burst_role
  member  = "serviceAccount:${google_service_account.burst.email}"
}

# Node release: burst deletes named idle nodes of its clusters through their node pools' managed
# instance groups (what GKE's cluster autoscaler does), whatever burst_role is.
resource "google_project_iam_custom_role" "burst_node_release" {
  project     = var.project
  role_id     = replace("${var.name}_node_release", "-", "_")
  title       = "burst node release"
  description = "Delete named nodes of burst's GKE node pools through their managed instance groups"
  permissions = local.burst_node_release_permissions
}

resource "google_project_iam_member" "burst_node_release" {
  project = var.project
  role    = google_project_iam_custom_role.burst_node_release.id
  member  = "serviceAccount:${google_service_account.burst.email}"
}

# GKE refuses to create nodes running as a service account the caller cannot act as.
resource "google_service_account_iam_member" "burst_acts_as_nodes" {
  service_account_id = google_service_account.nodes.name
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${google_service_account.burst.email}"
}
