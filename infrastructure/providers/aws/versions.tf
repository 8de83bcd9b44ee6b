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

  # Every resource of a run carries these; `cloudbench nuke --run-id` sweeps by them.
  default_tags {
    tags = {
      Project = "cloudbench"
      RunId   = var.run_id
    }
  }
}
