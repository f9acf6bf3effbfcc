# The controller and the probe of one Switchyard region, as two plain EC2
# instances with fixed private addresses (see the README for why not an
# auto-scaling group of one).

data "aws_region" "current" {}

data "aws_ami" "debian" {
  count       = var.ami_id == null ? 1 : 0
  most_recent = true
  owners      = ["136693071363"] # Debian's official AWS account

  filter {
    name   = "name"
    values = ["debian-12-amd64-*"]
  }

  filter {
    name   = "architecture"
    values = ["x86_64"]
  }
}

locals {
  this          = one([for r in var.cluster.regions : r if r.name == var.region])
  controller_id = "ctl-${var.region}"
  route53       = var.cluster.dns.backend == "route53"
  region_cidrs  = distinct(var.cluster.regions[*].cidr)
  metrics_cidrs = var.metrics_cidrs == null ? local.region_cidrs : var.metrics_cidrs
  ami_id        = var.ami_id == null ? data.aws_ami.debian[0].id : var.ami_id
  tags          = merge(var.tags, { "switchyard:cluster" = var.cluster.name, "switchyard:region" = var.region })

  # The one config every controller and probe reads. The template sees
  # exactly these two variables (terraform/tests/render.py renders it the
  # same way in CI and `switchyard config check` checks the result).
  config = templatefile("${path.module}/templates/switchyard.toml.tftpl", {
    cluster        = var.cluster
    hosted_zone_id = var.hosted_zone_id
  })

  # Ports the probe checks and the controller connects to, from the config.
  target_ports = distinct(flatten([for s in var.cluster.services : [for e in s.endpoints : tonumber(regex(":([0-9]+)$", e.target)[0])]]))
  member_ports = distinct(flatten([for d in var.cluster.databases : [for m in d.members : tonumber(regex(":([0-9]+)$", m.address)[0])]]))
  dns_checks   = anytrue(flatten([for s in var.cluster.services : [for c in s.checks : c.kind == "dns"]]))

  # cloud-init: download the package, refuse it unless its digest matches,
  # install it (apt-get resolves its dependencies), check the config, start
  # the unit. Files are written before the package, so the unit finds its
  # config on first start.
  install = [
    ["apt-get", "update"],
    ["curl", "-fsS", "--proto", "=https", "--retry", "5", "-o", "/root/switchyard.deb", var.package_url],
    ["sh", "-c", "echo '${var.package_sha256}  /root/switchyard.deb' | sha256sum -c -"],
    ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "--no-install-recommends", "/root/switchyard.deb"],
    ["switchyard", "config", "check", "/etc/switchyard/switchyard.toml"],
    ["systemctl", "daemon-reload"],
  ]
  config_file = {
    path        = "/etc/switchyard/switchyard.toml"
    content     = local.config
    owner       = "root:root"
    permissions = "0644"
  }

  controller_user_data = join("\n", ["#cloud-config", yamlencode({
    write_files = [
      local.config_file,
      { path = "/etc/switchyard/etcd-ca.pem", content = var.etcd_ca_pem, owner = "root:root", permissions = "0644" },
      { path = "/etc/switchyard/etcd-client.pem", content = var.etcd_client_cert_pem, owner = "root:root", permissions = "0644" },
      { path = "/etc/switchyard/etcd-client-key.pem", content = var.etcd_client_key_pem, owner = "root:root", permissions = "0600" },
    ]
    runcmd = concat(local.install, [["systemctl", "enable", "--now", "switchyard-controller@${local.controller_id}"]])
  })])

  probe_user_data = join("\n", ["#cloud-config", yamlencode({
    write_files = [
      local.config_file,
      {
        # The unit's default is 0.0.0.0:9401; bind the configured port on
        # the probe's own address.
        path        = "/etc/systemd/system/switchyard-probe@.service.d/metrics.conf"
        content     = "[Service]\nEnvironment=SWITCHYARD_PROBE_METRICS_LISTEN=${local.this.probe_ip}:${var.cluster.probe_metrics_port}\n"
        owner       = "root:root"
        permissions = "0644"
      },
    ]
    runcmd = concat(local.install, [["systemctl", "enable", "--now", "switchyard-probe@${var.region}"]])
  })])
}

resource "aws_instance" "controller" {
  ami                         = local.ami_id
  instance_type               = var.instance_type
  subnet_id                   = var.subnet_id
  private_ip                  = local.this.controller_ip
  vpc_security_group_ids      = [aws_security_group.controller.id]
  iam_instance_profile        = aws_iam_instance_profile.controller.name
  associate_public_ip_address = false
  monitoring                  = true
  ebs_optimized               = true
  user_data                   = local.controller_user_data

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  maintenance_options {
    auto_recovery = "default"
  }

  root_block_device {
    encrypted             = true
    kms_key_id            = var.kms_key_id
    volume_type           = "gp3"
    volume_size           = var.root_volume_size
    delete_on_termination = true
  }

  tags        = merge(local.tags, { Name = "switchyard-${local.controller_id}", "switchyard:role" = "controller" })
  volume_tags = local.tags

  lifecycle {
    # User data runs once, at first boot: a changed config or a newer AMI
    # must not stop or replace every controller at once. Roll such changes
    # out host by host (runbooks/controller-upgrade.md).
    ignore_changes = [ami, user_data]
  }
}

resource "aws_instance" "probe" {
  #checkov:skip=CKV2_AWS_41:The probe calls no AWS API; an instance profile would only be a credential to steal.
  ami                         = local.ami_id
  instance_type               = var.instance_type
  subnet_id                   = var.subnet_id
  private_ip                  = local.this.probe_ip
  vpc_security_group_ids      = [aws_security_group.probe.id]
  associate_public_ip_address = false
  monitoring                  = true
  ebs_optimized               = true
  user_data                   = local.probe_user_data

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  maintenance_options {
    auto_recovery = "default"
  }

  root_block_device {
    encrypted             = true
    kms_key_id            = var.kms_key_id
    volume_type           = "gp3"
    volume_size           = var.root_volume_size
    delete_on_termination = true
  }

  tags        = merge(local.tags, { Name = "switchyard-probe-${var.region}", "switchyard:role" = "probe" })
  volume_tags = local.tags

  lifecycle {
    ignore_changes = [ami, user_data]
  }
}

# Explicit recovery on a failed system status check (host hardware or
# network): the instance comes back on another host with the same id,
# private address and root volume, so the config stays true.
resource "aws_cloudwatch_metric_alarm" "recover" {
  for_each = {
    controller = aws_instance.controller.id
    probe      = aws_instance.probe.id
  }

  alarm_name          = "switchyard-${var.region}-${each.key}-recover"
  alarm_description   = "Recover the Switchyard ${each.key} of ${var.region} when its system status check fails."
  namespace           = "AWS/EC2"
  metric_name         = "StatusCheckFailed_System"
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 2
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  dimensions          = { InstanceId = each.value }
  alarm_actions       = ["arn:${data.aws_partition.current.partition}:automate:${data.aws_region.current.name}:ec2:recover"]
  tags                = local.tags
}
