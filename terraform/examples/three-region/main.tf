# Three regions (us-east, eu-west, ap-south), each with a controller, a
# probe and an etcd member; one Route 53 zone with the weighted records.
# The etcd certificates are made here with the tls provider (see the README
# for keeping them in a secrets store instead).

locals {
  regions = { for r in var.cluster.regions : r.name => r }

  # Writer records start out naming each database's first member; the
  # leader repairs a writer record that does not name the recorded primary
  # within 30 s of starting, and moves it on every failover.
  writer_records = [for d in var.cluster.databases : {
    record = d.writer_record
    type   = "A"
    ttl    = 30
    value  = split(":", d.members[0].address)[0]
  } if d.writer_record != null]

  etcd_members = [for r in var.cluster.regions : { name = r.name, ip = r.etcd_ip, cidr = r.cidr }]

  # What every switchyard-region call shares.
  region_common = {
    hosted_zone_id       = module.dns.zone_id
    package_url          = var.package_url
    package_sha256       = var.package_sha256
    etcd_ca_pem          = tls_self_signed_cert.ca.cert_pem
    etcd_client_cert_pem = tls_locally_signed_cert.controller.cert_pem
    etcd_client_key_pem  = tls_private_key.controller.private_key_pem
  }
}

module "dns" {
  source = "../../modules/switchyard-dns"

  zone_name      = var.domain
  regions        = [for r in var.cluster.regions : { name = r.name, weight = r.weight }]
  services       = [for s in var.cluster.services : { name = s.name, record = s.record, ttl = s.ttl, type = s.type, endpoints = [for e in s.endpoints : { region = e.region, value = e.value }] }]
  writer_records = local.writer_records
  tags           = var.tags
}

# --- etcd: private CA, one certificate per member, one for the controllers.

resource "tls_private_key" "ca" {
  algorithm   = "ECDSA"
  ecdsa_curve = "P256"
}

resource "tls_self_signed_cert" "ca" {
  private_key_pem       = tls_private_key.ca.private_key_pem
  is_ca_certificate     = true
  validity_period_hours = 24 * 365 * 5
  allowed_uses          = ["cert_signing", "crl_signing"]

  subject {
    common_name  = "switchyard ${var.cluster.name} etcd CA"
    organization = "Switchyard"
  }
}

resource "tls_private_key" "etcd" {
  for_each    = local.regions
  algorithm   = "ECDSA"
  ecdsa_curve = "P256"
}

resource "tls_cert_request" "etcd" {
  for_each        = local.regions
  private_key_pem = tls_private_key.etcd[each.key].private_key_pem
  ip_addresses    = [each.value.etcd_ip, "127.0.0.1"]

  subject {
    common_name  = "etcd-${each.key}"
    organization = "Switchyard"
  }
}

resource "tls_locally_signed_cert" "etcd" {
  for_each              = local.regions
  cert_request_pem      = tls_cert_request.etcd[each.key].cert_request_pem
  ca_private_key_pem    = tls_private_key.ca.private_key_pem
  ca_cert_pem           = tls_self_signed_cert.ca.cert_pem
  validity_period_hours = 24 * 365
  allowed_uses          = ["digital_signature", "key_encipherment", "server_auth", "client_auth"]
}

resource "tls_private_key" "controller" {
  algorithm   = "ECDSA"
  ecdsa_curve = "P256"
}

resource "tls_cert_request" "controller" {
  private_key_pem = tls_private_key.controller.private_key_pem

  subject {
    common_name  = "switchyard-controller"
    organization = "Switchyard"
  }
}

resource "tls_locally_signed_cert" "controller" {
  cert_request_pem      = tls_cert_request.controller.cert_request_pem
  ca_private_key_pem    = tls_private_key.ca.private_key_pem
  ca_cert_pem           = tls_self_signed_cert.ca.cert_pem
  validity_period_hours = 24 * 365
  allowed_uses          = ["digital_signature", "key_encipherment", "client_auth"]
}

# --- etcd members, one per region.

module "etcd_us_east" {
  source = "../../modules/etcd-cluster"

  cluster_token = "switchyard-${var.cluster.name}"
  members       = local.etcd_members
  member        = "us-east"
  client_port   = var.cluster.etcd_client_port
  peer_port     = var.cluster.etcd_peer_port
  ca_pem        = tls_self_signed_cert.ca.cert_pem
  cert_pem      = tls_locally_signed_cert.etcd["us-east"].cert_pem
  key_pem       = tls_private_key.etcd["us-east"].private_key_pem
  vpc_id        = var.networks["us-east"].vpc_id
  subnet_id     = var.networks["us-east"].subnet_id
  tags          = var.tags
}

module "etcd_eu_west" {
  source    = "../../modules/etcd-cluster"
  providers = { aws = aws.eu_west }

  cluster_token = "switchyard-${var.cluster.name}"
  members       = local.etcd_members
  member        = "eu-west"
  client_port   = var.cluster.etcd_client_port
  peer_port     = var.cluster.etcd_peer_port
  ca_pem        = tls_self_signed_cert.ca.cert_pem
  cert_pem      = tls_locally_signed_cert.etcd["eu-west"].cert_pem
  key_pem       = tls_private_key.etcd["eu-west"].private_key_pem
  vpc_id        = var.networks["eu-west"].vpc_id
  subnet_id     = var.networks["eu-west"].subnet_id
  tags          = var.tags
}

module "etcd_ap_south" {
  source    = "../../modules/etcd-cluster"
  providers = { aws = aws.ap_south }

  cluster_token = "switchyard-${var.cluster.name}"
  members       = local.etcd_members
  member        = "ap-south"
  client_port   = var.cluster.etcd_client_port
  peer_port     = var.cluster.etcd_peer_port
  ca_pem        = tls_self_signed_cert.ca.cert_pem
  cert_pem      = tls_locally_signed_cert.etcd["ap-south"].cert_pem
  key_pem       = tls_private_key.etcd["ap-south"].private_key_pem
  vpc_id        = var.networks["ap-south"].vpc_id
  subnet_id     = var.networks["ap-south"].subnet_id
  tags          = var.tags
}

# --- Switchyard controller and probe, one of each per region.

module "region_us_east" {
  source = "../../modules/switchyard-region"

  region               = "us-east"
  cluster              = var.cluster
  hosted_zone_id       = local.region_common.hosted_zone_id
  package_url          = local.region_common.package_url
  package_sha256       = local.region_common.package_sha256
  etcd_ca_pem          = local.region_common.etcd_ca_pem
  etcd_client_cert_pem = local.region_common.etcd_client_cert_pem
  etcd_client_key_pem  = local.region_common.etcd_client_key_pem
  vpc_id               = var.networks["us-east"].vpc_id
  subnet_id            = var.networks["us-east"].subnet_id
  tags                 = var.tags

  # The controllers reach etcd at start-up.
  depends_on = [module.etcd_us_east, module.etcd_eu_west, module.etcd_ap_south]
}

module "region_eu_west" {
  source    = "../../modules/switchyard-region"
  providers = { aws = aws.eu_west }

  region               = "eu-west"
  cluster              = var.cluster
  hosted_zone_id       = local.region_common.hosted_zone_id
  package_url          = local.region_common.package_url
  package_sha256       = local.region_common.package_sha256
  etcd_ca_pem          = local.region_common.etcd_ca_pem
  etcd_client_cert_pem = local.region_common.etcd_client_cert_pem
  etcd_client_key_pem  = local.region_common.etcd_client_key_pem
  vpc_id               = var.networks["eu-west"].vpc_id
  subnet_id            = var.networks["eu-west"].subnet_id
  tags                 = var.tags

  depends_on = [module.etcd_us_east, module.etcd_eu_west, module.etcd_ap_south]
}

module "region_ap_south" {
  source    = "../../modules/switchyard-region"
  providers = { aws = aws.ap_south }

  region               = "ap-south"
  cluster              = var.cluster
  hosted_zone_id       = local.region_common.hosted_zone_id
  package_url          = local.region_common.package_url
  package_sha256       = local.region_common.package_sha256
  etcd_ca_pem          = local.region_common.etcd_ca_pem
  etcd_client_cert_pem = local.region_common.etcd_client_cert_pem
  etcd_client_key_pem  = local.region_common.etcd_client_key_pem
  vpc_id               = var.networks["ap-south"].vpc_id
  subnet_id            = var.networks["ap-south"].subnet_id
  tags                 = var.tags

  depends_on = [module.etcd_us_east, module.etcd_eu_west, module.etcd_ap_south]
}
