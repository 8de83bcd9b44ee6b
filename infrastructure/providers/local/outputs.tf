output "engine" {
  description = "Container engine command that answered."
  value       = var.engine
}

output "engine_server_version" {
  description = "Server version the engine reported."
  value       = data.external.engine.result.server_version
}

output "run_id" {
  description = "Id of the benchmark run."
  value       = var.run_id
}
