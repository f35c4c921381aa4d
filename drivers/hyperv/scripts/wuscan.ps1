# Pending updates through MSFT_WUOperations (Server 2019+), no third-party module.
$s=Invoke-CimMethod -Namespace root/Microsoft/Windows/WindowsUpdate -ClassName MSFT_WUOperations -MethodName ScanForUpdates -Arguments @{SearchCriteria=[string]$P.criteria}
if($s.ReturnValue -ne 0){throw ('drover:wu_error:0x{0:X8}' -f [uint32]$s.ReturnValue)}
ConvertTo-Json -Compress -Depth 4 @{ok=$true;data=@{updates=@($s.Updates|%{@{title=[string]$_.Title;kb=[string]$_.KBArticleID;id=[string]$_.UpdateID}})}}
