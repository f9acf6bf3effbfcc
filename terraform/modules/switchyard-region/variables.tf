variable "region" {
  description = "Name of the Switchyard region this module deploys (one of cluster.regions[*].name): its controller ctl-<region> and its probe."
  type        = string

  validation {
    condition     = contains(var.cluster.regions[*].name, var.region)
    error_message = "region must be one of cluster.regions[*].name."
  }
}

variable "cluster" {
  description = <<-EOT
    The whole Switchyard deployment, identical for every region module: the
    config each host gets is rendered from it (templates/switchyard.toml.tftpl),
    so every controller and probe reads the same file. See the README for the
    fields; names follow examples/switchyard.toml.
  EOT
  type = object({
    name               = string
    lease_ttl          = string
    grpc_port          = number
    metrics_port       = number
    probe_metrics_port = number
    etcd_client_port   = number
    etcd_peer_port     = number
    failback           = string
    db_failover        = string
    regions = list(object({
      name          = string
      weight        = number
      priority      = number
      cidr          = string
      controller_ip = string
      probe_ip      = string
      etcd_ip       = string
    }))
    services = list(object({
      name   = string
      record = string
      ttl    = number
      type   = string
      endpoints = list(object({
        region = string
        value  = string
        target = string
      }))
      checks = list(object({
        kind     = string
        interval = string
        timeout  = string
        path     = optional(string)
      }))
    }))
    databases = list(object({
      name          = string
      kind          = string
      writer_record = optional(string)
      max_lag       = string
      credentials   = string
      members = list(object({
        id        = string
        region    = string
        address   = string
        promotion = string
      }))
    }))
    credentials = list(object({
      name         = string
      user         = string
      password_env = string
    }))
    dns = object({
      backend                 = string
      zone                    = string
      max_requests_per_second = number
    })
  })

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+$", var.cluster.name))
    error_message = "cluster.name must use letters, digits, '-', '_' and '.' only."
  }

  validation {
    condition     = length(var.cluster.regions) >= 2 && length(distinct(var.cluster.regions[*].name)) == length(var.cluster.regions)
    error_message = "cluster.regions needs at least two regions with distinct names."
  }

  validation {
    condition     = alltrue([for r in var.cluster.regions : can(regex("^[A-Za-z0-9_-]+$", r.name)) && r.weight >= 0 && r.weight <= 255 && floor(r.weight) == r.weight])
    error_message = "Each region name uses letters, digits, '-' and '_'; each weight is a whole number 0-255."
  }

  validation {
    condition     = length(distinct(var.cluster.regions[*].priority)) == length(var.cluster.regions)
    error_message = "Each region needs its own priority."
  }

  validation {
    condition = alltrue(flatten([for r in var.cluster.regions : [
      can(cidrhost(r.cidr, 0)),
      can(cidrhost("${r.controller_ip}/32", 0)),
      can(cidrhost("${r.probe_ip}/32", 0)),
      can(cidrhost("${r.etcd_ip}/32", 0)),
    ]]))
    error_message = "Each region's cidr must be an IPv4 CIDR and controller_ip, probe_ip and etcd_ip IPv4 addresses."
  }

  validation {
    condition = alltrue([for p in [var.cluster.grpc_port, var.cluster.metrics_port, var.cluster.probe_metrics_port, var.cluster.etcd_client_port, var.cluster.etcd_peer_port] :
    p >= 1024 && p <= 65535 && floor(p) == p])
    error_message = "Ports must be whole numbers 1024-65535 (53 is the only privileged port the controller unit may bind)."
  }

  validation {
    condition     = length(distinct([var.cluster.grpc_port, var.cluster.metrics_port, var.cluster.probe_metrics_port])) == 3
    error_message = "grpc_port, metrics_port and probe_metrics_port must differ."
  }

  validation {
    condition     = can(regex("^[0-9]+s$", var.cluster.lease_ttl))
    error_message = "lease_ttl is whole seconds, e.g. \"5s\"."
  }

  validation {
    condition     = contains(["auto", "manual"], var.cluster.failback) && contains(["auto", "manual"], var.cluster.db_failover)
    error_message = "failback and db_failover are \"auto\" or \"manual\"."
  }

  validation {
    condition = alltrue(flatten([for s in var.cluster.services : [
      endswith(s.record, "."),
      contains(["A", "AAAA", "CNAME"], s.type),
      length(s.checks) > 0,
      alltrue([for c in s.checks : contains(["http", "https", "tcp", "dns", "grpc"], c.kind)]),
      alltrue([for e in s.endpoints : contains(var.cluster.regions[*].name, e.region)]),
    ]]))
    error_message = "Each service: record fully qualified (ends with '.'), type A, AAAA or CNAME, at least one check of kind http, https, tcp, dns or grpc, endpoints in declared regions."
  }

  validation {
    condition = alltrue(flatten([for d in var.cluster.databases : [
      contains(["mysql", "mariadb", "mongodb"], d.kind),
      d.writer_record == null ? true : endswith(d.writer_record, "."),
      contains(var.cluster.credentials[*].name, d.credentials),
      alltrue([for m in d.members : contains(var.cluster.regions[*].name, m.region) && contains(["prefer", "neutral", "must_not"], m.promotion)]),
    ]]))
    error_message = "Each database: kind mysql, mariadb or mongodb, writer_record fully qualified, credentials one of cluster.credentials, members in declared regions with promotion prefer, neutral or must_not."
  }

  validation {
    condition     = alltrue([for c in var.cluster.credentials : can(regex("^[A-Za-z0-9_-]+$", c.name)) && can(regex("^[A-Z_][A-Z0-9_]*$", c.password_env))])
    error_message = "Credential names use letters, digits, '-' and '_' (no '.': they become a TOML table key); password_env is an environment variable name."
  }

  validation {
    condition     = contains(["route53", "embedded"], var.cluster.dns.backend) && endswith(var.cluster.dns.zone, ".")
    error_message = "dns.backend is \"route53\" or \"embedded\"; dns.zone is fully qualified (ends with '.')."
  }
}

variable "hosted_zone_id" {
  description = "Route 53 hosted zone holding the service and writer records (without /hostedzone/), e.g. module.dns.zone_id. The controller's IAM policy is scoped to it. Null with the embedded backend."
  type        = string
  default     = null

  validation {
    condition     = var.cluster.dns.backend == "route53" ? can(regex("^Z[A-Z0-9]{1,31}$", var.hosted_zone_id)) : var.hosted_zone_id == null
    error_message = "With the route53 backend, hosted_zone_id is the zone's id, like Z0123456789ABCDEFGHIJ (no /hostedzone/ prefix); with the embedded backend, leave it null."
  }
}

variable "subnet_id" {
  description = "Subnet for the controller and probe instances; it must contain the region's controller_ip and probe_ip."
  type        = string

  validation {
    condition     = can(regex("^subnet-[0-9a-f]{8,17}$", var.subnet_id))
    error_message = "subnet_id looks like subnet-0123456789abcdef0."
  }
}

variable "vpc_id" {
  description = "VPC of subnet_id, where the security groups are made."
  type        = string

  validation {
    condition     = can(regex("^vpc-[0-9a-f]{8,17}$", var.vpc_id))
    error_message = "vpc_id looks like vpc-0123456789abcdef0."
  }
}

variable "package_url" {
  description = "HTTPS URL of the switchyard Debian package (`cargo deb -p switchyard`) that cloud-init downloads and installs."
  type        = string

  validation {
    condition     = startswith(var.package_url, "https://") && endswith(var.package_url, ".deb")
    error_message = "package_url is an https:// URL of a .deb file."
  }
}

variable "package_sha256" {
  description = "SHA-256 of the package at package_url; cloud-init refuses to install anything else."
  type        = string

  validation {
    condition     = can(regex("^[0-9a-f]{64}$", var.package_sha256))
    error_message = "package_sha256 is 64 lowercase hex digits."
  }
}

variable "etcd_ca_pem" {
  description = "PEM CA bundle that signed the etcd server certificates, written to /etc/switchyard/etcd-ca.pem."
  type        = string

  validation {
    condition     = startswith(trimspace(var.etcd_ca_pem), "-----BEGIN CERTIFICATE-----")
    error_message = "etcd_ca_pem is a PEM certificate."
  }
}

variable "etcd_client_cert_pem" {
  description = "PEM client certificate the controllers present to etcd (mutual TLS), written to /etc/switchyard/etcd-client.pem."
  type        = string

  validation {
    condition     = startswith(trimspace(var.etcd_client_cert_pem), "-----BEGIN CERTIFICATE-----")
    error_message = "etcd_client_cert_pem is a PEM certificate."
  }
}

variable "etcd_client_key_pem" {
  description = "PEM private key of etcd_client_cert_pem, written to /etc/switchyard/etcd-client-key.pem. It ends up in user data and state: see the README."
  type        = string
  sensitive   = true

  validation {
    condition     = can(regex("^-----BEGIN (RSA |EC )?PRIVATE KEY-----", trimspace(var.etcd_client_key_pem)))
    error_message = "etcd_client_key_pem is a PEM private key."
  }
}

variable "instance_type" {
  description = "EC2 instance type of the controller and the probe."
  type        = string
  default     = "t3.small"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*[0-9][a-z0-9-]*\\.[a-z0-9]+$", var.instance_type))
    error_message = "instance_type looks like t3.small."
  }
}

variable "ami_id" {
  description = "AMI for both instances; null picks the newest official Debian 12 (bookworm) amd64 image."
  type        = string
  default     = null

  validation {
    condition     = var.ami_id == null || can(regex("^ami-[0-9a-f]{8,17}$", var.ami_id))
    error_message = "ami_id looks like ami-0123456789abcdef0."
  }
}

variable "root_volume_size" {
  description = "Root volume size in GiB (encrypted gp3); the controller keeps its isolation-fence record on it."
  type        = number
  default     = 16

  validation {
    condition     = var.root_volume_size >= 8 && var.root_volume_size <= 1024
    error_message = "root_volume_size is 8-1024 GiB."
  }
}

variable "kms_key_id" {
  description = "KMS key ARN for the root volumes; null uses the account's default EBS key."
  type        = string
  default     = null
}

variable "metrics_cidrs" {
  description = "CIDRs allowed to scrape the controller and probe metrics ports; null means every region's cidr (Prometheus runs inside them)."
  type        = list(string)
  default     = null

  validation {
    condition     = var.metrics_cidrs == null ? true : alltrue([for c in var.metrics_cidrs : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "metrics_cidrs are IPv4 CIDRs, and not 0.0.0.0/0."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
