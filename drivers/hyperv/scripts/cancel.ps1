# Cancel a live migration in flight; the VM stays on its source.
Move-ClusterVirtualMachineRole -Name $P.vm -Cancel|Out-Null
ConvertTo-Json -Compress @{ok=$true;data=@{cancelled=$true}}
