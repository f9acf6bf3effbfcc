# The controller's instance profile. With the route53 backend its one
# policy allows exactly what the controller calls: ChangeResourceRecordSets
# and ListResourceRecordSets on the one hosted zone, GetChange on changes.
# ChangeResourceRecordSets is further limited to the service and writer
# records of the config, their record types and the actions the controller
# uses (UPSERT, and DELETE of a stale writer record). With the embedded
# backend the role has no policy at all. The probe has no role.
# terraform/tests (run by switchyard/tests/terraform.rs) asserts this.

data "aws_partition" "current" {}

data "aws_iam_policy_document" "assume_role" {
  statement {
    sid     = "Ec2AssumeRole"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "controller" {
  name_prefix        = "switchyard-${var.region}-"
  description        = "Switchyard controller ${local.controller_id}"
  assume_role_policy = data.aws_iam_policy_document.assume_role.json
  tags               = local.tags
}

locals {
  # Route 53 compares lower-case names without the trailing dot.
  owned_records = distinct(concat(
    [for s in var.cluster.services : lower(trimsuffix(s.record, "."))],
    [for d in var.cluster.databases : lower(trimsuffix(d.writer_record, ".")) if d.writer_record != null],
  ))
}

data "aws_iam_policy_document" "route53" {
  count = local.route53 ? 1 : 0

  statement {
    sid       = "ChangeOwnedRecords"
    effect    = "Allow"
    actions   = ["route53:ChangeResourceRecordSets"]
    resources = ["arn:${data.aws_partition.current.partition}:route53:::hostedzone/${var.hosted_zone_id}"]

    condition {
      test     = "ForAllValues:StringEquals"
      variable = "route53:ChangeResourceRecordSetsNormalizedRecordNames"
      values   = local.owned_records
    }

    condition {
      test     = "ForAllValues:StringEquals"
      variable = "route53:ChangeResourceRecordSetsRecordTypes"
      values   = ["A", "AAAA", "CNAME"]
    }

    condition {
      test     = "ForAllValues:StringEquals"
      variable = "route53:ChangeResourceRecordSetsActions"
      values   = ["UPSERT", "DELETE"]
    }
  }

  statement {
    sid       = "ReadRecords"
    effect    = "Allow"
    actions   = ["route53:ListResourceRecordSets"]
    resources = ["arn:${data.aws_partition.current.partition}:route53:::hostedzone/${var.hosted_zone_id}"]
  }

  statement {
    sid       = "FollowChanges"
    effect    = "Allow"
    actions   = ["route53:GetChange"]
    resources = ["arn:${data.aws_partition.current.partition}:route53:::change/*"]
  }
}

resource "aws_iam_role_policy" "route53" {
  count  = local.route53 ? 1 : 0
  name   = "switchyard-route53"
  role   = aws_iam_role.controller.id
  policy = data.aws_iam_policy_document.route53[0].json
}

resource "aws_iam_instance_profile" "controller" {
  name_prefix = "switchyard-${var.region}-"
  role        = aws_iam_role.controller.name
  tags        = local.tags
}
