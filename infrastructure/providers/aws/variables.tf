variable "region" {
  type        = string
  description = "AWS region to launch runners in; the region of subnet_id."

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "region must look like an AWS region name, e.g. us-east-1."
  }
}

variable "run_id" {
  type        = string
  description = "Id of the benchmark run; tagged on every resource and passed to each runner."

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$", var.run_id))
    error_message = "run_id must be 1-40 letters, digits, '_' or '-', starting with a letter or digit."
  }
}

variable "instance_types" {
  type = list(object({
    instance_type = string
    alias         = string
    # This type's own count (config "instances" on the entry); null: var.instances.
    instances = optional(number)
    # Config "capacity" (issue 27): "spot" requests one-time spot instances that terminate
    # when reclaimed; max_price is their cap in USD per hour (null: the on-demand price,
    # EC2's own default cap).
    capacity  = optional(string, "on-demand")
    max_price = optional(number)
    # Subnet in a zone that offers the type (the meta stack's zone_subnets); null: subnet_id.
    subnet_id = optional(string)
  }))
  description = "Instance types to benchmark, each with the alias its results are reported under."

  validation {
    condition     = length(var.instance_types) > 0
    error_message = "instance_types must name at least one instance type."
  }

  validation {
    condition     = length(distinct([for t in var.instance_types : t.alias])) == length(var.instance_types)
    error_message = "Each alias in instance_types must be unique."
  }

  validation {
    condition     = alltrue([for t in var.instance_types : can(regex("^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$", t.alias))])
    error_message = "Aliases must be 1-63 letters, digits, '.', '_' or '-'."
  }

  validation {
    condition     = alltrue([for t in var.instance_types : contains(["on-demand", "spot"], t.capacity)])
    error_message = "capacity must be \"on-demand\" or \"spot\"."
  }

  validation {
    condition     = alltrue([for t in var.instance_types : t.max_price == null || (t.capacity == "spot" && try(t.max_price > 0.001, false))])
    error_message = "max_price is for spot capacity and must be above 0.001 USD per hour."
  }
}

variable "instances" {
  type        = number
  description = "Number of instances launched for each instance type (per_instance_type.instances)."
  default     = 1

  validation {
    condition     = var.instances >= 1 && var.instances <= 20 && floor(var.instances) == var.instances
    error_message = "instances must be a whole number between 1 and 20."
  }
}

variable "orchestrator_url" {
  type        = string
  description = "Base URL of the orchestrator as reachable from the runners (the wheel is served at <url>/dist/)."

  validation {
    condition     = can(regex("^https?://[^/]+", var.orchestrator_url))
    error_message = "orchestrator_url must be an http:// or https:// URL."
  }
}

variable "orchestrator_tls_cert" {
  type        = string
  description = "The orchestrator's self-signed certificate (PEM, the meta stack's orchestrator_tls_certificate output) that runners trust alone; empty: the system's CAs (a domain name)."
  default     = ""

  validation {
    condition     = var.orchestrator_tls_cert == "" || startswith(trimspace(var.orchestrator_tls_cert), "-----BEGIN CERTIFICATE-----")
    error_message = "orchestrator_tls_cert must be empty or a PEM certificate."
  }
}

variable "runner_token" {
  type        = string
  description = "Token runners present to the orchestrator; stored as an SSM SecureString, never in user-data. Pass via TF_VAR_runner_token."
  sensitive   = true

  validation {
    condition     = length(var.runner_token) >= 16
    error_message = "runner_token must be at least 16 characters."
  }
}

variable "subnet_id" {
  type        = string
  description = "Subnet with a route to the internet to launch runners in when their instance_types entry names none (the meta stack's subnet_id output); it also names the VPC."
}

variable "orchestrator_port" {
  type        = number
  description = "TCP port the runners connect to the orchestrator on (egress rule)."
  default     = 8000

  validation {
    condition     = var.orchestrator_port >= 1 && var.orchestrator_port <= 65535
    error_message = "orchestrator_port must be a TCP port number."
  }
}

variable "boot_timeout_seconds" {
  type        = number
  description = "How long an instance may stay pending before the apply fails (the master's --boot-timeout)."
  default     = 900

  validation {
    condition     = var.boot_timeout_seconds >= 10
    error_message = "boot_timeout_seconds must be at least 10."
  }
}

variable "max_lifetime_minutes" {
  type        = number
  description = "Hard limit on an instance's life: it powers off (and so terminates) after this many minutes whatever it is doing. Keep it above the runner's task timeout (6 h by default) plus setup."
  default     = 720

  validation {
    condition     = var.max_lifetime_minutes >= 10 && var.max_lifetime_minutes <= 2880
    error_message = "max_lifetime_minutes must be between 10 and 2880."
  }
}

variable "root_volume_size_gb" {
  type        = number
  description = "Size in GiB of each runner's encrypted root volume."
  default     = 30

  validation {
    condition     = var.root_volume_size_gb >= 8 && var.root_volume_size_gb <= 1024
    error_message = "root_volume_size_gb must be between 8 and 1024."
  }
}

variable "debug" {
  type        = bool
  description = "cloudbench run --debug: a runner whose boot or task failed keeps its instance up until max_lifetime_minutes instead of powering it off."
  default     = false
}

variable "heartbeat_interval" {
  type        = number
  description = "Seconds between a runner's heartbeats and machine reports; the master counts a VM silent for four of them as failed."
  default     = 30

  validation {
    condition     = var.heartbeat_interval >= 1 && var.heartbeat_interval <= 300
    error_message = "heartbeat_interval must be between 1 and 300 seconds."
  }
}

variable "bucket" {
  type        = string
  description = "The meta deployment's bucket (its bucket output); holds the shipped ruby-bench suite."
  default     = ""
}

variable "ship_ruby_bench" {
  type        = bool
  description = "Upload ruby-bench.tar.gz from this module's folder (the master packs --ruby-bench there) for the runners, instead of their cloning ruby-bench."
  default     = false
}

variable "wheelhouse_arches" {
  type        = list(string)
  description = "EC2 architectures (x86_64, arm64) the master packed wheelhouse-<arch>.tar for in this module's folder: its wheel and hash-pinned dependencies, which runners install with pip --no-index --require-hashes."
  default     = []
}

variable "benchmark_image" {
  type = object({
    arch              = string
    file              = string
    ruby_image_digest = string
  })
  description = "The run's benchmark image the master built (CLOUDBENCH_AWS_SHARE_IMAGE): its EC2 architecture, the benchmark-<sha256>.tar it saved in this module's folder, and the ruby:<version> digest it was built from. Runners of that architecture load it instead of building; an empty file ships none."
  default     = { arch = "", file = "", ruby_image_digest = "" }

  validation {
    condition     = var.benchmark_image.file == "" || can(regex("^benchmark-[0-9a-f]{64}\\.tar$", var.benchmark_image.file))
    error_message = "benchmark_image.file must be a benchmark-<sha256>.tar name."
  }
}
