# OpenStack landing zone for burst's `openstack` provider: a tenant network (or a site network),
# a Nova key pair and the Magnum cluster template every burst cluster is made from. burst creates
# and deletes the Magnum clusters; nothing here is touched by burst at run time.

locals {
  network_id = var.create_network ? openstack_networking_network_v2.this[0].id : data.openstack_networking_network_v2.existing[0].id
  subnet_id  = var.create_network ? openstack_networking_subnet_v2.this[0].id : data.openstack_networking_subnet_v2.existing[0].id
}

data "openstack_networking_network_v2" "external" {
  count    = var.external_network == null ? 0 : 1
  name     = var.external_network
  external = true
}

resource "openstack_networking_network_v2" "this" {
  count          = var.create_network ? 1 : 0
  name           = var.name
  admin_state_up = true
}

resource "openstack_networking_subnet_v2" "this" {
  count           = var.create_network ? 1 : 0
  name            = "${var.name}-nodes"
  network_id      = openstack_networking_network_v2.this[0].id
  cidr            = var.subnet_cidr
  ip_version      = 4
  dns_nameservers = var.dns_nameservers
}

resource "openstack_networking_router_v2" "this" {
  count               = var.create_network && var.external_network != null ? 1 : 0
  name                = var.name
  admin_state_up      = true
  external_network_id = data.openstack_networking_network_v2.external[0].id
}

resource "openstack_networking_router_interface_v2" "this" {
  count     = length(openstack_networking_router_v2.this)
  router_id = openstack_networking_router_v2.this[0].id
  subnet_id = openstack_networking_subnet_v2.this[0].id
}

data "openstack_networking_network_v2" "existing" {
  count = var.create_network ? 0 : 1
  name  = var.existing_network

  lifecycle {
    precondition {
      condition     = var.existing_network != null && var.existing_subnet != null
      error_message = "create_network = false needs existing_network and existing_subnet."
    }
  }
}

data "openstack_networking_subnet_v2" "existing" {
  count      = var.create_network ? 0 : 1
  name       = var.existing_subnet
  network_id = data.openstack_networking_network_v2.existing[0].id
}

resource "openstack_compute_keypair_v2" "this" {
  name       = "${var.name}-nodes"
  public_key = var.public_key
}

resource "openstack_containerinfra_clustertemplate_v1" "this" {
  name                = var.name
  coe                 = "kubernetes"
  server_type         = "vm"
  image               = var.image
  flavor              = var.worker_flavor
  master_flavor       = var.master_flavor
  keypair_id          = openstack_compute_keypair_v2.this.name
  network_driver      = var.network_driver
  external_network_id = one(data.openstack_networking_network_v2.external[*].id)
  fixed_network       = local.network_id
  fixed_subnet        = local.subnet_id
  dns_nameserver      = var.dns_nameservers[0]
  floating_ip_enabled = var.floating_ip_enabled
  master_lb_enabled   = var.master_lb_enabled
  tls_disabled        = false # burst's kubeconfigs are signed through Magnum's CA
  labels              = var.labels

  depends_on = [openstack_networking_router_interface_v2.this]
}
