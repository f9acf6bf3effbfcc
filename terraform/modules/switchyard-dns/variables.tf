variable "zone_name" {
  description = "DNS name of the hosted zone, e.g. example.com (a trailing dot is accepted)."
  type        = string

  validation {
    condition     = can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}\\.?$", var.zone_name))
    error_message = "zone_name is a lower-case DNS name such as example.com."
  }
}

variable "create_zone" {
  description = "Create a public hosted zone named zone_name (true), or use the existing zone_id (false)."
  type        = bool
  default     = true
}

variable "zone_id" {
  description = "Id of an existing hosted zone (without /hostedzone/) when create_zone is false."
  type        = string
  default     = null

  validation {
    condition     = var.create_zone ? var.zone_id == null : can(regex("^Z[A-Z0-9]{1,31}$", var.zone_id))
    error_message = "With create_zone = false, zone_id is the existing zone's id (like Z0123456789ABCDEFGHIJ); with create_zone = true, leave it null."
  }
}

variable "regions" {
  description = "The Switchyard regions and their base weights (0-255), as in the config's [[regions]]."
  type = list(object({
    name   = string
    weight = number
  }))

  validation {
    condition     = length(var.regions) > 0 && alltrue([for r in var.regions : r.weight >= 0 && r.weight <= 255 && floor(r.weight) == r.weight])
    error_message = "At least one region; weights are whole numbers 0-255."
  }
}

variable "services" {
  description = "Weighted records the controllers own: one record set per endpoint, SetIdentifier = region, created with the region's base weight. Same shape as the config's [[services]] (extra attributes are ignored)."
  type = list(object({
    name   = string
    record = string
    ttl    = number
    type   = string
    endpoints = list(object({
      region = string
      value  = string
    }))
  }))

  validation {
    condition     = alltrue([for s in var.services : endswith(s.record, ".") && contains(["A", "AAAA", "CNAME"], s.type) && s.ttl >= 0 && s.ttl <= 86400])
    error_message = "Each record is fully qualified (ends with '.'), of type A, AAAA or CNAME, with a TTL 0-86400."
  }
}

variable "writer_records" {
  description = "Writer records (one per database with writer_record): the name and the primary it names at creation. The controller moves them on every failover."
  type = list(object({
    record = string
    type   = string
    value  = string
    ttl    = number
  }))
  default = []

  validation {
    condition     = alltrue([for w in var.writer_records : endswith(w.record, ".") && contains(["A", "AAAA", "CNAME"], w.type)])
    error_message = "Each writer record is fully qualified (ends with '.') and of type A, AAAA or CNAME."
  }
}

variable "query_log_group_arn" {
  description = "ARN of a CloudWatch Logs group in us-east-1 (with a resource policy letting route53.amazonaws.com write) to receive the created zone's query log; null: no query logging."
  type        = string
  default     = null

  validation {
    condition     = var.query_log_group_arn == null || can(regex("^arn:aws[a-z-]*:logs:us-east-1:[0-9]{12}:log-group:", var.query_log_group_arn))
    error_message = "query_log_group_arn is a CloudWatch Logs group ARN in us-east-1 (Route 53 logs queries there only)."
  }
}

variable "dnssec_kms_key_arn" {
  description = "ARN of a KMS key (us-east-1, ECC_NIST_P256, SIGN_VERIFY, usable by dnssec-route53.amazonaws.com) to sign the created zone with DNSSEC; null: unsigned. Add the DS record at the parent yourself."
  type        = string
  default     = null

  validation {
    condition     = var.dnssec_kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:us-east-1:[0-9]{12}:key/", var.dnssec_kms_key_arn))
    error_message = "dnssec_kms_key_arn is a KMS key ARN in us-east-1."
  }
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete a created zone that still holds records."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags added to the hosted zone."
  type        = map(string)
  default     = {}
}
