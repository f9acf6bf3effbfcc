# Ingress opens exactly: gRPC to the controller and the metrics ports from
# the regions' CIDRs, and DNS (53/udp, 53/tcp) to the controller only with
# the embedded backend. Egress is what the hosts dial: peers, etcd, the
# checked targets and database members, and HTTPS/HTTP for the package,
# Debian's mirrors and the Route 53 API (which has no VPC endpoint).

resource "aws_security_group" "controller" {
  name_prefix = "switchyard-${local.controller_id}-"
  description = "Switchyard controller ${local.controller_id}: gRPC, metrics and embedded DNS between the regions"
  vpc_id      = var.vpc_id
  tags        = merge(local.tags, { Name = "switchyard-${local.controller_id}" })

  ingress {
    description = "gRPC: probe reports, peer controllers' pings, operator API"
    protocol    = "tcp"
    from_port   = var.cluster.grpc_port
    to_port     = var.cluster.grpc_port
    cidr_blocks = local.region_cidrs
  }

  ingress {
    description = "Prometheus scrape of the controller's /metrics"
    protocol    = "tcp"
    from_port   = var.cluster.metrics_port
    to_port     = var.cluster.metrics_port
    cidr_blocks = local.metrics_cidrs
  }

  dynamic "ingress" {
    for_each = local.route53 ? [] : ["udp", "tcp"]
    content {
      description = "Embedded authoritative DNS (${ingress.value})"
      protocol    = ingress.value
      from_port   = 53
      to_port     = 53
      cidr_blocks = local.region_cidrs
    }
  }

  egress {
    description = "gRPC to the peer controllers"
    protocol    = "tcp"
    from_port   = var.cluster.grpc_port
    to_port     = var.cluster.grpc_port
    cidr_blocks = local.region_cidrs
  }

  egress {
    description = "etcd client port"
    protocol    = "tcp"
    from_port   = var.cluster.etcd_client_port
    to_port     = var.cluster.etcd_client_port
    cidr_blocks = local.region_cidrs
  }

  dynamic "egress" {
    for_each = local.member_ports
    content {
      description = "Database members (fence, promote, read lag)"
      protocol    = "tcp"
      from_port   = egress.value
      to_port     = egress.value
      cidr_blocks = local.region_cidrs
    }
  }

  egress {
    description = "HTTPS: Route 53 API and the package download"
    protocol    = "tcp"
    from_port   = 443
    to_port     = 443
    cidr_blocks = ["0.0.0.0/0"]
  }

  egress {
    description = "HTTP: Debian mirrors (apt checks the signed Release files)"
    protocol    = "tcp"
    from_port   = 80
    to_port     = 80
    cidr_blocks = ["0.0.0.0/0"]
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_security_group" "probe" {
  name_prefix = "switchyard-probe-${var.region}-"
  description = "Switchyard probe ${var.region}: metrics in; checks and reports out"
  vpc_id      = var.vpc_id
  tags        = merge(local.tags, { Name = "switchyard-probe-${var.region}" })

  ingress {
    description = "Prometheus scrape of the probe's /metrics"
    protocol    = "tcp"
    from_port   = var.cluster.probe_metrics_port
    to_port     = var.cluster.probe_metrics_port
    cidr_blocks = local.metrics_cidrs
  }

  egress {
    description = "gRPC reports to every controller"
    protocol    = "tcp"
    from_port   = var.cluster.grpc_port
    to_port     = var.cluster.grpc_port
    cidr_blocks = local.region_cidrs
  }

  dynamic "egress" {
    for_each = distinct(concat(local.target_ports, local.member_ports))
    content {
      description = "Checked service endpoints and database members"
      protocol    = "tcp"
      from_port   = egress.value
      to_port     = egress.value
      cidr_blocks = local.region_cidrs
    }
  }

  dynamic "egress" {
    for_each = local.dns_checks ? local.target_ports : []
    content {
      description = "DNS checks (udp)"
      protocol    = "udp"
      from_port   = egress.value
      to_port     = egress.value
      cidr_blocks = local.region_cidrs
    }
  }

  egress {
    description = "HTTPS: the package download"
    protocol    = "tcp"
    from_port   = 443
    to_port     = 443
    cidr_blocks = ["0.0.0.0/0"]
  }

  egress {
    description = "HTTP: Debian mirrors (apt checks the signed Release files)"
    protocol    = "tcp"
    from_port   = 80
    to_port     = 80
    cidr_blocks = ["0.0.0.0/0"]
  }

  lifecycle {
    create_before_destroy = true
  }
}
