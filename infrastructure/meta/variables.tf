variable "region" {
  type        = string
  description = "AWS region of the orchestrator, its network and its results bucket."
  default     = "us-east-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "region must look like an AWS region name, e.g. us-east-1."
  }
}

variable "name_prefix" {
  type        = string
  description = "Prefix of resource names (Name tags, IAM names, bucket name)."
  default     = "cloudbench"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.name_prefix))
    error_message = "name_prefix must be 2-21 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "vpc_cidr" {
  type        = string
  description = "CIDR block of the cloudbench VPC."
  default     = "10.42.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0))
    error_message = "vpc_cidr must be a valid IPv4 CIDR block."
  }
}

variable "public_subnet_cidr" {
  type        = string
  description = "CIDR block of the public subnet (inside vpc_cidr) that holds orchestrator, bastion and the runners of its zone; keep it the VPC's first /20: the other zones' subnets take the next /20s (by zone letter)."
  default     = "10.42.0.0/20"

  validation {
    condition     = can(cidrhost(var.public_subnet_cidr, 0))
    error_message = "public_subnet_cidr must be a valid IPv4 CIDR block."
  }
}

variable "availability_zone" {
  type        = string
  description = "Availability zone of the public subnet; null picks the region's first available zone."
  default     = null
}

variable "allowed_http_cidrs" {
  type        = list(string)
  description = "CIDR blocks allowed to reach the orchestrator over HTTP(S): where the CLI and any runners outside this VPC connect from."

  validation {
    condition     = length(var.allowed_http_cidrs) > 0 && alltrue([for c in var.allowed_http_cidrs : can(cidrhost(c, 0))])
    error_message = "allowed_http_cidrs must be a non-empty list of valid IPv4 CIDR blocks."
  }
}

variable "bastion_ssh_cidr" {
  type        = string
  description = "CIDR block allowed to SSH into the bastion, e.g. your public address as a /32. Required: SSH is never open to the world."

  validation {
    condition     = can(cidrhost(var.bastion_ssh_cidr, 0)) && var.bastion_ssh_cidr != "0.0.0.0/0"
    error_message = "bastion_ssh_cidr must be a valid IPv4 CIDR block other than 0.0.0.0/0."
  }
}

variable "ssh_public_key" {
  type        = string
  description = "OpenSSH public key installed on the bastion and the orchestrator."

  validation {
    condition     = can(regex("^(ssh-(ed25519|rsa)|ecdsa-sha2-nistp[0-9]+) ", var.ssh_public_key))
    error_message = "ssh_public_key must be an OpenSSH public key (ssh-ed25519, ssh-rsa or ecdsa-sha2-*)."
  }
}

variable "orchestrator_instance_type" {
  type        = string
  description = "EC2 instance type of the orchestrator (Postgres runs beside it)."
  default     = "t3.small"
}

variable "bastion_instance_type" {
  type        = string
  description = "EC2 instance type of the SSH bastion."
  default     = "t3.micro"
}

variable "root_volume_size_gb" {
  type        = number
  description = "Size in GiB of the orchestrator's encrypted root volume (Docker images and Postgres data)."
  default     = 30

  validation {
    condition     = var.root_volume_size_gb >= 8 && var.root_volume_size_gb <= 1024
    error_message = "root_volume_size_gb must be between 8 and 1024."
  }
}

variable "orchestrator_wheel" {
  type        = string
  description = "File name of the cloudbench wheel in this module's dist/ folder (the master puts its own there) that the orchestrator installs and serves to runners."

  validation {
    condition     = can(regex("^cloudbench-[A-Za-z0-9_.+-]+\\.whl$", var.orchestrator_wheel))
    error_message = "orchestrator_wheel must be the file name of a cloudbench wheel."
  }
}

variable "suffix" {
  type        = string
  description = "Suffix of this deployment's globally unique names (bucket, IAM), chosen once by the master."

  validation {
    condition     = can(regex("^[a-z0-9]{8}$", var.suffix))
    error_message = "suffix must be 8 lowercase letters or digits."
  }
}

variable "admin_token" {
  type        = string
  description = "Admin token of the orchestrator (chosen by the master; stored in SSM)."
  sensitive   = true

  validation {
    condition     = length(var.admin_token) >= 32
    error_message = "admin_token must be at least 32 characters."
  }
}

variable "runner_token" {
  type        = string
  description = "Token runners present to the orchestrator (chosen by the master; stored in SSM)."
  sensitive   = true

  validation {
    condition     = length(var.runner_token) >= 32
    error_message = "runner_token must be at least 32 characters."
  }
}

variable "postgres_password" {
  type        = string
  description = "Password of the orchestrator's PostgreSQL role (chosen by the master; stored in SSM). Letters and digits only."
  sensitive   = true

  validation {
    condition     = can(regex("^[A-Za-z0-9]{24,}$", var.postgres_password))
    error_message = "postgres_password must be at least 24 letters or digits."
  }
}

variable "tls_cert" {
  type        = string
  description = "Self-signed certificate (PEM) the orchestrator serves HTTPS with and every client pins (made by the master with its key)."

  validation {
    condition     = startswith(trimspace(var.tls_cert), "-----BEGIN CERTIFICATE-----")
    error_message = "tls_cert must be a PEM certificate."
  }
}

variable "tls_key" {
  type        = string
  description = "Private key (PEM) of tls_cert (chosen by the master; stored in SSM)."
  sensitive   = true

  validation {
    condition     = startswith(trimspace(var.tls_key), "-----BEGIN PRIVATE KEY-----")
    error_message = "tls_key must be a PEM (PKCS#8) private key."
  }
}

variable "domain_name" {
  type        = string
  description = "DNS name pointing at the orchestrator's elastic IP. Non-empty puts Caddy (an ACME certificate, port 443) in front of the orchestrator."
  default     = ""
}

variable "results_expiry_days" {
  type        = number
  description = "Days after which result objects in the bucket expire."
  default     = 90

  validation {
    condition     = var.results_expiry_days >= 1
    error_message = "results_expiry_days must be at least 1."
  }
}

variable "wheelhouse_arches" {
  type        = list(string)
  description = "EC2 architectures (x86_64, arm64) the master packed dist/wheelhouse-<arch>.tar for: its wheel and hash-pinned dependencies, which the orchestrator installs with pip --no-index --require-hashes."
  default     = []
}
