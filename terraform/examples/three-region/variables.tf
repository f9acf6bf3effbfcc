variable "domain" {
  description = "The hosted zone created for the service and writer records, e.g. example.com."
  type        = string

  validation {
    condition     = can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$", var.domain))
    error_message = "domain is a lower-case DNS name without the trailing dot, such as example.com."
  }
}

variable "networks" {
  description = "Per region: the AWS region, and the existing VPC and subnet that hold its controller, probe and etcd member. The VPCs must already reach each other (peering or a transit gateway) on the regions' CIDRs."
  type = map(object({
    aws_region = string
    vpc_id     = string
    subnet_id  = string
  }))

  validation {
    condition     = toset(keys(var.networks)) == toset(["us-east", "eu-west", "ap-south"])
    error_message = "networks has exactly the keys us-east, eu-west and ap-south."
  }

  validation {
    condition     = alltrue([for n in values(var.networks) : can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", n.aws_region))])
    error_message = "aws_region is an AWS region name such as eu-west-1."
  }
}

variable "package_url" {
  description = "HTTPS URL of the switchyard Debian package the hosts install."
  type        = string

  validation {
    condition     = startswith(var.package_url, "https://") && endswith(var.package_url, ".deb")
    error_message = "package_url is an https:// URL of a .deb file."
  }
}

variable "package_sha256" {
  description = "SHA-256 of the package at package_url."
  type        = string

  validation {
    condition     = can(regex("^[0-9a-f]{64}$", var.package_sha256))
    error_message = "package_sha256 is 64 lowercase hex digits."
  }
}

variable "cluster" {
  description = "The Switchyard deployment: regions with their addresses, services, databases, credentials and DNS backend. Passed unchanged to every switchyard-region module (which validates it in detail) and rendered into the one config every host reads. The region names must be us-east, eu-west and ap-south, as the module blocks are."
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
    condition     = toset(var.cluster.regions[*].name) == toset(["us-east", "eu-west", "ap-south"])
    error_message = "This example wires exactly the regions us-east, eu-west and ap-south."
  }

  validation {
    condition     = var.cluster.dns.backend == "route53" && var.cluster.dns.zone == "${trimsuffix(var.domain, ".")}."
    error_message = "This example uses the route53 backend with dns.zone = the domain (with a trailing dot)."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = { "app" = "switchyard" }
}
