variable "subscription_id" {
  type        = string
  description = "Azure subscription to launch runners in (CLOUDBENCH_AZURE_SUBSCRIPTION_ID)."

  validation {
    condition     = can(regex("^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$", var.subscription_id))
    error_message = "subscription_id must be a subscription GUID."
  }
}

variable "location" {
  type        = string
  description = "Azure region to launch runners in (CLOUDBENCH_AZURE_LOCATION), e.g. westeurope."

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{2,39}$", var.location))
    error_message = "location must be an Azure region name such as westeurope or eastus2."
  }
}

variable "run_id" {
  type        = string
  description = "Id of the benchmark run; names the resource group and is tagged on every resource."

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
    # From the Resource SKUs API (CpuArchitectureType, PremiumIO), filled in by the master.
    architecture         = string
    premium_io           = bool
    gen2                 = bool
    disk_controller_type = optional(string, "SCSI")
    # Config "capacity" (issue 27): "spot" makes a Spot VM (priority Spot, deleted when
    # evicted) capped at max_price USD per hour (null: -1, the pay-as-you-go price).
    capacity  = optional(string, "on-demand")
    max_price = optional(number)
  }))
  description = "VM sizes to benchmark, each with its alias and what the Azure API reports for it: architecture, Premium SSD support, Hyper-V generation 2 support."

  validation {
    condition     = length(var.instance_types) > 0
    error_message = "instance_types must name at least one VM size."
  }

  validation {
    condition     = alltrue([for t in var.instance_types : contains(["on-demand", "spot"], t.capacity) && (t.max_price == null || t.capacity == "spot")])
    error_message = "capacity must be \"on-demand\" or \"spot\"; max_price is for spot capacity."
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
    condition     = alltrue([for t in var.instance_types : can(regex("^[A-Za-z0-9_]{3,64}$", t.instance_type))])
    error_message = "instance_type must be an Azure VM size name such as Standard_D2pls_v6."
  }

  validation {
    condition     = alltrue([for t in var.instance_types : contains(["SCSI", "NVMe"], t.disk_controller_type)])
    error_message = "disk_controller_type must be SCSI or NVMe (from the Resource SKUs API's DiskControllerTypes)."
  }

  validation {
    condition     = alltrue([for t in var.instance_types : contains(["x64", "Arm64"], t.architecture)])
    error_message = "architecture must be x64 or Arm64 (the Resource SKUs API's CpuArchitectureType)."
  }
}

variable "instances" {
  type        = number
  description = "Number of VMs launched for each VM size (per_instance_type.instances)."
  default     = 1

  validation {
    condition     = var.instances >= 1 && var.instances <= 20 && floor(var.instances) == var.instances
    error_message = "instances must be a whole number between 1 and 20."
  }
}

variable "orchestrator_url" {
  type        = string
  description = "Base URL of the orchestrator as reachable from Azure (the wheel is served at <url>/dist/)."

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
  description = "Token runners present to the orchestrator; stored as a Key Vault secret, never in custom data or tags. Pass via TF_VAR_runner_token."
  sensitive   = true

  validation {
    condition     = length(var.runner_token) >= 16
    error_message = "runner_token must be at least 16 characters."
  }
}

variable "ssh_public_key" {
  type        = string
  description = "OpenSSH public key of the admin user (password login is disabled, so Azure requires one)."

  validation {
    condition     = can(regex("^(ssh-rsa|ssh-ed25519|ecdsa-sha2-nistp[0-9]+) [A-Za-z0-9+/=]+", var.ssh_public_key))
    error_message = "ssh_public_key must be an OpenSSH public key line (ssh-ed25519 AAAA... or ssh-rsa AAAA...)."
  }
}

variable "ssh_cidr" {
  type        = string
  description = "CIDR allowed to reach the runners on SSH (port 22); empty admits no inbound traffic at all."
  default     = ""

  validation {
    condition     = var.ssh_cidr == "" || (can(cidrhost(var.ssh_cidr, 0)) && var.ssh_cidr != "0.0.0.0/0")
    error_message = "ssh_cidr must be empty or a CIDR narrower than 0.0.0.0/0, e.g. 203.0.113.7/32."
  }
}

variable "address_space" {
  type        = string
  description = "Address space of the run's virtual network; the runner subnet takes its first /24."
  default     = "10.77.0.0/16"

  validation {
    condition     = can(cidrsubnet(var.address_space, 24 - tonumber(split("/", var.address_space)[1]), 0))
    error_message = "address_space must be an IPv4 CIDR of /24 or larger, e.g. 10.77.0.0/16."
  }
}

variable "max_lifetime_minutes" {
  type        = number
  description = "Hard limit on a VM's life: it deallocates itself after this many minutes whatever it is doing. Keep it above the runner's task timeout (6 h by default) plus setup."
  default     = 720

  validation {
    condition     = var.max_lifetime_minutes >= 10 && var.max_lifetime_minutes <= 2880
    error_message = "max_lifetime_minutes must be between 10 and 2880."
  }
}

variable "os_disk_size_gb" {
  type        = number
  description = "Size in GiB of each runner's OS disk."
  default     = 64

  validation {
    condition     = var.os_disk_size_gb >= 30 && var.os_disk_size_gb <= 1024
    error_message = "os_disk_size_gb must be between 30 and 1024."
  }
}

variable "ruby_bench_sha256" {
  type        = string
  description = "The sha256 of the ruby-bench suite the master stored with the run at the orchestrator (--ruby-bench); runners download it from there (runner token) and check it. Empty: runners clone ruby-bench."
  default     = ""

  validation {
    condition     = can(regex("^([0-9a-f]{64})?$", var.ruby_bench_sha256))
    error_message = "ruby_bench_sha256 must be 64 lowercase hex digits or empty."
  }
}

variable "runner_requirements" {
  type        = map(string)
  description = "Per CPU architecture (x64, Arm64): what the runner imports, pinned to the master's lock (name==version lines); runners install exactly these with pip --no-deps beside the master's wheel from the orchestrator. An architecture without an entry resolves the wheel's dependencies."
  default     = {}

  validation {
    condition = alltrue([
      for arch, pins in var.runner_requirements :
      contains(["x64", "Arm64"], arch) && can(regex("^([A-Za-z0-9._-]+==[A-Za-z0-9.+!_-]+\n?)*$", pins))
    ])
    error_message = "runner_requirements: keys x64 or Arm64, values name==version lines."
  }
}

variable "debug" {
  type        = bool
  description = "cloudbench run --debug: a runner whose boot or task failed keeps its VM up until max_lifetime_minutes instead of deallocating it."
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

variable "launch_vms" {
  type        = bool
  description = "false applies everything but the VMs and their network interfaces: cloudbench run applies it so first, adds nat_public_ip to the orchestrator's allow-list, then applies it with true."
  default     = true
}
