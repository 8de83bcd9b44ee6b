terraform {
  required_version = ">= 1.5.0, < 2.0.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.60"
    }
  }
}

provider "aws" {
  region = var.region

  # Tags on every resource are how `cloudbench nuke` recognises what is ours.
  default_tags {
    tags = {
      Project = "cloudbench"
      Stack   = "meta"
    }
  }
}
