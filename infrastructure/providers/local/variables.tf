variable "run_id" {
  type        = string
  description = "Id of the benchmark run (echoed in the outputs for the master's bookkeeping)."

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$", var.run_id))
    error_message = "run_id must be 1-40 letters, digits, '_' or '-', starting with a letter or digit."
  }
}

variable "engine" {
  type        = string
  description = "Command of the Docker-compatible container engine the local runners use."
  default     = "docker"

  validation {
    condition     = contains(["docker", "podman", "nerdctl"], var.engine)
    error_message = "engine must be one of docker, podman, nerdctl."
  }
}
