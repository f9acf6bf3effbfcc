terraform {
  required_version = ">= 1.9.0, < 2.0.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.70"
    }
    tls = {
      source  = "hashicorp/tls"
      version = "~> 4.0"
    }
  }
}

# Route 53 is global; the default provider also serves us-east.
provider "aws" {
  region = var.networks["us-east"].aws_region
}

provider "aws" {
  alias  = "eu_west"
  region = var.networks["eu-west"].aws_region
}

provider "aws" {
  alias  = "ap_south"
  region = var.networks["ap-south"].aws_region
}
