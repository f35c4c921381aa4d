# Scan and install in one go; E_ACCESSDENIED (0x80070005) from a network logon is reported
# as drover:wu_denied so that the driver falls back to the SYSTEM task.
$ns='root/Microsoft/Windows/WindowsUpdate'
$s=Invoke-CimMethod -Namespace $ns -ClassName MSFT_WUOperations -MethodName ScanForUpdates -Arguments @{SearchCriteria=[string]$P.criteria}
if($s.ReturnValue -ne 0){throw ('drover:wu_error:0x{0:X8}' -f [uint32]$s.ReturnValue)}
$u=@($s.Updates)
$r=@{installed=@($u|%{@{title=[string]$_.Title;kb=[string]$_.KBArticleID;id=[string]$_.UpdateID}});reboot=$false}
if($u.Count -gt 0){$i=Invoke-CimMethod -Namespace $ns -ClassName MSFT_WUOperations -MethodName InstallUpdates -Arguments @{Updates=[ciminstance[]]$u}
if([uint32]$i.ReturnValue -eq 0x80070005){throw 'drover:wu_denied'}
if($i.ReturnValue -ne 0){throw ('drover:wu_error:0x{0:X8}' -f [uint32]$i.ReturnValue)}
$r.reboot=[bool]$i.RebootRequired}
ConvertTo-Json -Compress -Depth 4 @{ok=$true;data=$r}
