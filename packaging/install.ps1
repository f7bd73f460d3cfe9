<#
.SYNOPSIS
Install Amicus and its models from this offline bundle (Windows), or remove them.

.DESCRIPTION
The work is done by install.py beside this file, the same program on every platform
(checksums, environment, models, rollback, uninstall). This script only finds a Python
3.10+ to run it with: -Python, else the py launcher's Python X.Y (the version this
bundle's wheels are built for), then any py launcher Python 3, python and python3.
Exit status: 0 done, 1 failure, 2 bad arguments, 3 corrupt or incomplete bundle,
130 interrupted.

.EXAMPLE
powershell -ExecutionPolicy Bypass -File install.ps1
powershell -ExecutionPolicy Bypass -File install.ps1 -Uninstall
#>
[CmdletBinding()]
param(
    # Amicus's own environment and the `amicus` command (its bin folder joins the user
    # PATH). Default: %LOCALAPPDATA%\Programs\Amicus
    [string]$Prefix = "",
    # Where amicus.cmd goes, a folder that joins the user PATH (default: PREFIX\bin).
    [string]$BinDir = "",
    # Amicus's data folder for the models (default: $env:AMICUS_HOME, else the user data
    # folder Amicus uses); the `amicus` command is set to use it.
    [string]$DataDir = "",
    # Python to build the environment with (default: the py launcher, then PATH).
    [string]$Python = "",
    # Replace models this bundle did not install.
    [switch]$Force,
    # Remove what an earlier run installed (conversations are kept).
    [switch]$Uninstall
)

Set-StrictMode -Version 3
# Not "Stop": Windows PowerShell 5.1 would turn a native command's stderr into an error.
$ErrorActionPreference = "Continue"
$PythonVersion = "@PYTHON_VERSION@"  # filled in by packaging/bundle.py
$script:Found = @()

# A path as PowerShell resolves it (from its current location, which .NET's GetFullPath
# does not follow), without requiring it to exist, and without a trailing backslash (it
# would escape the closing quote when the path is passed to python.exe).
function Resolve-Loosely([string]$Path) {
    $full = $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($Path)
    if ($full.Length -gt 3) { $full = $full.TrimEnd("") }
    return $full
}

# The first Python 3.10+ among the candidates, as a full path; $null if none.
function Find-Python {
    $candidates = @()
    if ($Python) { $candidates += , @($Python) }
    $candidates += , @("py", "-$PythonVersion")
    $candidates += , @("py", "-3")
    $candidates += , @("python")
    $candidates += , @("python3")
    $probe = "import sys; print('%d.%d' % sys.version_info[:2]); print(sys.executable); " +
        "sys.exit(sys.version_info < (3, 10))"
    foreach ($candidate in $candidates) {
        $exe = $candidate[0]
        if (-not (Get-Command $exe -ErrorAction SilentlyContinue)) { continue }
        $rest = @($candidate | Select-Object -Skip 1)
        $output = @(& $exe @rest -c $probe 2>$null)
        if ($LASTEXITCODE -eq 0 -and $output.Count -ge 2) { return $output[1] }
        if ($output.Count -ge 1) { $script:Found += "$($candidate -join ' ')=$($output[0])" }
    }
    return $null
}

$arguments = @()
if ($Prefix) { $arguments += "--prefix", (Resolve-Loosely $Prefix) }
if ($BinDir) { $arguments += "--bin-dir", (Resolve-Loosely $BinDir) }
if ($DataDir) { $arguments += "--data-dir", (Resolve-Loosely $DataDir) }
if ($Python) { $arguments += "--python", $Python }
if ($Force) { $arguments += "--force" }
if ($Uninstall) { $arguments += "--uninstall" }

$exe = Find-Python
if (-not $exe) {
    $found = if ($script:Found) { $script:Found -join ", " } else { "none" }
    Write-Host ("install.ps1: error: Python 3.10 or newer is needed to run the installer " +
        "(and Python $PythonVersion for this bundle's wheels); found: $found. Install Python " +
        "$PythonVersion from the offline media or pass -Python PATH") -ForegroundColor Red
    exit 1
}
if ($Uninstall) { Set-Location -LiteralPath $env:TEMP }  # a folder in use cannot be deleted
$env:AMICUS_INSTALLER = "install.ps1"  # install.py names itself so in its messages
& $exe -I (Join-Path $PSScriptRoot "install.py") @arguments
exit $LASTEXITCODE
