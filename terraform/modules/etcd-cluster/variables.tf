variable "cluster_token" {
  description = "etcd initial-cluster-token: the same for every member of one cluster, different between clusters."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]{1,64}$", var.cluster_token))
    error_message = "cluster_token uses letters, digits, '-', '_' and '.' (at most 64)."
  }
}

variable "members" {
  description = "Every member of the cluster (the initial cluster, the same list in every call): name, private IPv4 address and the CIDR of its region (allowed to reach the client port)."
  type = list(object({
    name = string
    ip   = string
    cidr = string
  }))

  validation {
    condition     = length(var.members) % 2 == 1 && length(distinct(var.members[*].name)) == length(var.members)
    error_message = "An odd number of members (3 or 5 across regions), with distinct names."
  }

  validation {
    condition     = alltrue([for m in var.members : can(regex("^[A-Za-z0-9_-]+$", m.name)) && can(cidrhost("${m.ip}/32", 0)) && can(cidrhost(m.cidr, 0))])
    error_message = "Member names use letters, digits, '-' and '_'; ip is an IPv4 address and cidr an IPv4 CIDR."
  }
}

variable "member" {
  description = "Name of the member this call creates (one of members[*].name). Call the module once per region, each with that region's provider."
  type        = string

  validation {
    condition     = contains(var.members[*].name, var.member)
    error_message = "member must be one of members[*].name."
  }
}

variable "client_cidrs" {
  description = "CIDRs allowed to reach the client port (the controllers' regions); null means every member's cidr."
  type        = list(string)
  default     = null

  validation {
    condition     = var.client_cidrs == null ? true : alltrue([for c in var.client_cidrs : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "client_cidrs are IPv4 CIDRs, and not 0.0.0.0/0."
  }
}

variable "client_port" {
  description = "etcd client port (https)."
  type        = number
  default     = 2379

  validation {
    condition     = var.client_port >= 1024 && var.client_port <= 65535
    error_message = "client_port is 1024-65535."
  }
}

variable "peer_port" {
  description = "etcd peer port (https, mutual TLS)."
  type        = number
  default     = 2380

  validation {
    condition     = var.peer_port >= 1024 && var.peer_port <= 65535
    error_message = "peer_port is 1024-65535."
  }
}

variable "ca_pem" {
  description = "PEM CA certificate that signed every member certificate and the clients' certificates; etcd trusts only it, for clients and for peers."
  type        = string

  validation {
    condition     = startswith(trimspace(var.ca_pem), "-----BEGIN CERTIFICATE-----")
    error_message = "ca_pem is a PEM certificate."
  }
}

variable "cert_pem" {
  description = "PEM certificate of this member, used for both client and peer TLS: extended key usages serverAuth and clientAuth, SANs its IP address (and 127.0.0.1)."
  type        = string

  validation {
    condition     = startswith(trimspace(var.cert_pem), "-----BEGIN CERTIFICATE-----")
    error_message = "cert_pem is a PEM certificate."
  }
}

variable "key_pem" {
  description = "PEM private key of cert_pem. It reaches the instance through user data and is kept in Terraform state: see the README."
  type        = string
  sensitive   = true

  validation {
    condition     = can(regex("^-----BEGIN (RSA |EC )?PRIVATE KEY-----", trimspace(var.key_pem)))
    error_message = "key_pem is a PEM private key."
  }
}

variable "subnet_id" {
  description = "Subnet of this member; it must contain the member's ip."
  type        = string

  validation {
    condition     = can(regex("^subnet-[0-9a-f]{8,17}$", var.subnet_id))
    error_message = "subnet_id looks like subnet-0123456789abcdef0."
  }
}

variable "vpc_id" {
  description = "VPC of subnet_id, where the security group is made."
  type        = string

  validation {
    condition     = can(regex("^vpc-[0-9a-f]{8,17}$", var.vpc_id))
    error_message = "vpc_id looks like vpc-0123456789abcdef0."
  }
}

variable "instance_type" {
  description = "EC2 instance type of the member (etcd wants steady disk latency more than CPU)."
  type        = string
  default     = "t3.small"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*[0-9][a-z0-9-]*\\.[a-z0-9]+$", var.instance_type))
    error_message = "instance_type looks like t3.small."
  }
}

variable "ami_id" {
  description = "AMI of the member; null picks the newest official Debian 12 (bookworm) amd64 image (etcd-server from Debian)."
  type        = string
  default     = null

  validation {
    condition     = var.ami_id == null || can(regex("^ami-[0-9a-f]{8,17}$", var.ami_id))
    error_message = "ami_id looks like ami-0123456789abcdef0."
  }
}

variable "root_volume_size" {
  description = "Root volume size in GiB (encrypted gp3, holds the etcd data directory)."
  type        = number
  default     = 20

  validation {
    condition     = var.root_volume_size >= 8 && var.root_volume_size <= 1024
    error_message = "root_volume_size is 8-1024 GiB."
  }
}

variable "kms_key_id" {
  description = "KMS key ARN for the root volume; null uses the account's default EBS key."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
