# Open Telekom Cloud landing zone for burst's `tsystems` provider: the VPC and subnet CCE clusters go
# into, the key pair their nodes get, and an IAM group (and user) with the CCE permissions burst
# needs. burst creates and deletes the CCE clusters; nothing here is touched by burst at run time.

data "opentelekomcloud_identity_project_v3" "this" {
  name = var.project_name
}

resource "opentelekomcloud_vpc_v1" "this" {
  name = var.name
  cidr = var.vpc_cidr
  tags = var.tags
}

resource "opentelekomcloud_vpc_subnet_v1" "this" {
  name       = "${var.name}-nodes"
  vpc_id     = opentelekomcloud_vpc_v1.this.id
  cidr       = var.subnet_cidr
  gateway_ip = cidrhost(var.subnet_cidr, 1)
  dns_list   = var.dns_servers
  tags       = var.tags
}

resource "opentelekomcloud_compute_keypair_v2" "this" {
  name       = "${var.name}-nodes"
  public_key = var.public_key
}

resource "opentelekomcloud_networking_secgroup_v2" "extra" {
  count       = var.create_security_group ? 1 : 0
  name        = "${var.name}-extra"
  description = "Operator-managed access into burst's VPC (not attached by CCE or burst)"
}

resource "opentelekomcloud_networking_secgroup_rule_v2" "ssh" {
  for_each          = var.create_security_group ? toset(var.admin_cidrs) : toset([])
  security_group_id = opentelekomcloud_networking_secgroup_v2.extra[0].id
  direction         = "ingress"
  ethertype         = "IPv4"
  protocol          = "tcp"
  port_range_min    = 22
  port_range_max    = 22
  remote_ip_prefix  = each.value
}

resource "opentelekomcloud_networking_secgroup_rule_v2" "kube_api" {
  for_each          = var.create_security_group ? toset(var.admin_cidrs) : toset([])
  security_group_id = opentelekomcloud_networking_secgroup_v2.extra[0].id
  direction         = "ingress"
  ethertype         = "IPv4"
  protocol          = "tcp"
  port_range_min    = 5443 # CCE's Kubernetes API port
  port_range_max    = 5443
  remote_ip_prefix  = each.value
}

# ---------------------------------------------------------------------------------------------
# IAM: a group holding burst's permissions in the project, and optionally a user in it.

data "opentelekomcloud_identity_role_v3" "burst" {
  for_each = var.burst_roles
  name     = each.key
}

resource "opentelekomcloud_identity_group_v3" "burst" {
  name        = "${var.name}-controller"
  description = "burst: CCE cluster lifecycle in ${var.project_name}"
}

resource "opentelekomcloud_identity_role_assignment_v3" "burst" {
  for_each   = var.burst_roles
  group_id   = opentelekomcloud_identity_group_v3.burst.id
  project_id = data.opentelekomcloud_identity_project_v3.this.id
  role_id    = data.opentelekomcloud_identity_role_v3.burst[each.key].id
}

resource "opentelekomcloud_identity_user_v3" "burst" {
  count       = var.create_burst_user ? 1 : 0
  name        = "${var.name}-robot"
  description = "burst's robot user (password / AK-SK set out of band)"
  enabled     = true
}

resource "opentelekomcloud_identity_user_group_membership_v3" "burst" {
  count  = var.create_burst_user ? 1 : 0
  user   = opentelekomcloud_identity_user_v3.burst[0].id
  groups = [opentelekomcloud_identity_group_v3.burst.id]
}

# CCE's service agency: how CCE creates ECS nodes, EVS disks and ports on the project's behalf.
resource "opentelekomcloud_identity_agency_v3" "cce" {
  count                 = var.create_cce_agency ? 1 : 0
  name                  = "cce_admin_trust"
  description           = "CCE service agency (created by burst's landing zone)"
  delegated_domain_name = "op_svc_cce"
  project_role {
    project = var.project_name
    roles   = ["Tenant Administrator"]
  }
}
