output "instances" {
  description = "Launched runners by key (<alias>-<n>): VM id, size, alias and architecture."
  value = {
    for k, vm in azurerm_linux_virtual_machine.runner : k => {
      id            = vm.id
      instance_type = vm.size
      alias         = local.runners[k].alias
      architecture  = local.runners[k].architecture
    }
  }
}

output "resource_group" {
  description = "Name of the run's resource group; deleting it removes everything this stack made."
  value       = azurerm_resource_group.run.name
}

output "key_vault_secret_id" {
  description = "Versionless id of the Key Vault secret holding the runner token."
  value       = azurerm_key_vault_secret.runner_token.versionless_id
}

output "nat_public_ip" {
  description = "The one public address the runners' outbound traffic leaves from (for orchestrator allow-lists)."
  value       = azurerm_public_ip.nat.ip_address
}
