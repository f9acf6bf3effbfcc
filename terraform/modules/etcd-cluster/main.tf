# One member of a TLS-only etcd cluster: Debian's etcd-server on a plain
# EC2 instance with a fixed private address (the initial cluster and every
# client name members by address). Client and peer traffic are https with
# client certificates checked against ca_pem.

data "aws_partition" "current" {}

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
  this         = one([for m in var.members : m if m.name == var.member])
  client_cidrs = var.client_cidrs == null ? distinct(var.members[*].cidr) : var.client_cidrs
  peers        = [for m in var.members : m if m.name != var.member]
  tags         = merge(var.tags, { "etcd:cluster" = var.cluster_token, "etcd:member" = var.member })
  tls_dir      = "/etc/etcd/tls"

  # Debian's etcd.service reads /etc/default/etcd.
  environment = join("\n", [
    "ETCD_NAME=${var.member}",
    "ETCD_DATA_DIR=/var/lib/etcd/${var.member}",
    "ETCD_LISTEN_CLIENT_URLS=https://${local.this.ip}:${var.client_port},https://127.0.0.1:${var.client_port}",
    "ETCD_ADVERTISE_CLIENT_URLS=https://${local.this.ip}:${var.client_port}",
    "ETCD_LISTEN_PEER_URLS=https://${local.this.ip}:${var.peer_port}",
    "ETCD_INITIAL_ADVERTISE_PEER_URLS=https://${local.this.ip}:${var.peer_port}",
    "ETCD_INITIAL_CLUSTER=${join(",", [for m in var.members : "${m.name}=https://${m.ip}:${var.peer_port}"])}",
    "ETCD_INITIAL_CLUSTER_STATE=new",
    "ETCD_INITIAL_CLUSTER_TOKEN=${var.cluster_token}",
    "ETCD_CLIENT_CERT_AUTH=true",
    "ETCD_TRUSTED_CA_FILE=${local.tls_dir}/ca.pem",
    "ETCD_CERT_FILE=${local.tls_dir}/member.pem",
    "ETCD_KEY_FILE=${local.tls_dir}/member-key.pem",
    "ETCD_PEER_CLIENT_CERT_AUTH=true",
    "ETCD_PEER_TRUSTED_CA_FILE=${local.tls_dir}/ca.pem",
    "ETCD_PEER_CERT_FILE=${local.tls_dir}/member.pem",
    "ETCD_PEER_KEY_FILE=${local.tls_dir}/member-key.pem",
    # A member cut off from the others does not raise its term while it
    # is away, so its return does not depose a healthy leader (etcd 3.4,
    # Debian's, defaults this off; 3.5 on).
    "ETCD_PRE_VOTE=true",
    # Keep the journal of a long-running cluster bounded.
    "ETCD_AUTO_COMPACTION_MODE=periodic",
    "ETCD_AUTO_COMPACTION_RETENTION=1h",
    "",
  ])

  user_data = join("\n", ["#cloud-config", yamlencode({
    write_files = [
      { path = "/etc/default/etcd", content = local.environment, owner = "root:root", permissions = "0644" },
      { path = "${local.tls_dir}/ca.pem", content = var.ca_pem, owner = "root:root", permissions = "0644" },
      { path = "${local.tls_dir}/member.pem", content = var.cert_pem, owner = "root:root", permissions = "0644" },
      { path = "${local.tls_dir}/member-key.pem", content = var.key_pem, owner = "root:root", permissions = "0600" },
      # Keep the package from starting etcd before the key is the etcd
      # user's; removed right after the install.
      { path = "/usr/sbin/policy-rc.d", content = "#!/bin/sh\nexit 101\n", owner = "root:root", permissions = "0755" },
    ]
    runcmd = [
      ["apt-get", "update"],
      ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "--no-install-recommends", "-o", "Dpkg::Options::=--force-confold", "etcd-server"],
      ["rm", "-f", "/usr/sbin/policy-rc.d"],
      ["chown", "-R", "etcd:etcd", local.tls_dir],
      ["systemctl", "enable", "etcd"],
      ["systemctl", "restart", "etcd"],
    ]
  })])
}

resource "aws_instance" "member" {
  #checkov:skip=CKV2_AWS_41:etcd calls no AWS API; an instance profile would only be a credential to steal.
  ami                         = var.ami_id == null ? data.aws_ami.debian[0].id : var.ami_id
  instance_type               = var.instance_type
  subnet_id                   = var.subnet_id
  private_ip                  = local.this.ip
  vpc_security_group_ids      = [aws_security_group.member.id]
  associate_public_ip_address = false
  monitoring                  = true
  ebs_optimized               = true
  user_data                   = local.user_data

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
    delete_on_termination = false
  }

  tags        = merge(local.tags, { Name = "etcd-${var.member}" })
  volume_tags = local.tags

  lifecycle {
    # User data runs once: a new certificate or AMI must not replace a
    # member (that would be a new member to add with `etcdctl member add`).
    # Rotate certificates on the host (runbooks, issue 13).
    ignore_changes = [ami, user_data]
  }
}

# Recover on a failed system status check: same instance, address and
# volume, so the member rejoins as itself.
resource "aws_cloudwatch_metric_alarm" "recover" {
  alarm_name          = "etcd-${var.member}-recover"
  alarm_description   = "Recover etcd member ${var.member} when its system status check fails."
  namespace           = "AWS/EC2"
  metric_name         = "StatusCheckFailed_System"
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 2
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  dimensions          = { InstanceId = aws_instance.member.id }
  alarm_actions       = ["arn:${data.aws_partition.current.partition}:automate:${data.aws_region.current.name}:ec2:recover"]
  tags                = local.tags
}

resource "aws_security_group" "member" {
  name_prefix = "etcd-${var.member}-"
  description = "etcd member ${var.member}: client port from the controllers' regions, peer port from the other members"
  vpc_id      = var.vpc_id
  tags        = merge(local.tags, { Name = "etcd-${var.member}" })

  ingress {
    description = "etcd clients (https, client certificates)"
    protocol    = "tcp"
    from_port   = var.client_port
    to_port     = var.client_port
    cidr_blocks = local.client_cidrs
  }

  ingress {
    description = "etcd peers (https, mutual TLS)"
    protocol    = "tcp"
    from_port   = var.peer_port
    to_port     = var.peer_port
    cidr_blocks = [for m in local.peers : "${m.ip}/32"]
  }

  egress {
    description = "etcd peers (https, mutual TLS)"
    protocol    = "tcp"
    from_port   = var.peer_port
    to_port     = var.peer_port
    cidr_blocks = [for m in local.peers : "${m.ip}/32"]
  }

  egress {
    description = "HTTP: Debian mirrors (apt checks the signed Release files)"
    protocol    = "tcp"
    from_port   = 80
    to_port     = 80
    cidr_blocks = ["0.0.0.0/0"]
  }

  egress {
    description = "HTTPS: Debian security mirrors"
    protocol    = "tcp"
    from_port   = 443
    to_port     = 443
    cidr_blocks = ["0.0.0.0/0"]
  }

  lifecycle {
    create_before_destroy = true
  }
}
