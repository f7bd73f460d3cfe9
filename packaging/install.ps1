<#
.SYNOPSIS
Install Amicus and its models from this offline bundle (Windows), or remove them.

.DESCRIPTION
Nothing here uses the network. Every file of the bundle is checked against SHA256SUMS
before anything is used; everything is built in staging folders next to its final place
and moved there at the end, so a corrupt bundle, a failure or Ctrl-C installs nothing.
Exit status: 0 done, 1 failure, 3 corrupt or incomplete bundle.

.EXAMPLE
powershell -ExecutionPolicy Bypass -File install.ps1
powershell -ExecutionPolicy Bypass -File install.ps1 -Uninstall
#>
[CmdletBinding()]
param(
    # Amicus's own environment and the `amicus` command (its bin folder joins the user PATH).
    [string]$Prefix = (Join-Path $env:LOCALAPPDATA "Programs\Amicus"),
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
$ErrorActionPreference = "Stop"

# Filled in by packaging/bundle.py when the bundle is built.
$AmicusVersion = "@AMICUS_VERSION@"
$PythonVersion = "@PYTHON_VERSION@"
$BundleName = "@BUNDLE_NAME@"
$TargetOs = "@TARGET_OS@"

$LauncherMark = "rem amicus launcher, written by the Amicus offline bundle installer"
$ReceiptName = "receipt.tsv"
$Here = $PSScriptRoot
$Ignored = @(".DS_Store", "Thumbs.db", "desktop.ini")  # added by file browsers

$script:Corrupt = $false  # set when the bundle fails its checks: exit status 3

function Say([string]$Text) { Write-Host $Text }

function Invoke-Native([string]$Exe, [string[]]$Arguments) {
    & $Exe @Arguments
    if ($LASTEXITCODE -ne 0) { throw "$Exe $($Arguments -join ' ') failed (exit $LASTEXITCODE)" }
}

function Get-Sha256([string]$Path) {
    (Get-FileHash -Algorithm SHA256 -LiteralPath $Path).Hash.ToLowerInvariant()
}

# Renames can fail for a moment while an antivirus scans freshly written files.
function Move-WithRetry([string]$From, [string]$To) {
    for ($attempt = 1; ; $attempt++) {
        try { Move-Item -LiteralPath $From -Destination $To; return }
        catch { if ($attempt -ge 10) { throw } ; Start-Sleep -Milliseconds 500 }
    }
}

# --- checks before anything is written ------------------------------------------------

function Find-Python {
    $candidates = @()
    if ($Python) { $candidates += , @($Python) }
    else {
        $candidates += , @("py", "-$PythonVersion")
        $candidates += , @("python")
        $candidates += , @("python3")
    }
    $found = @()
    foreach ($candidate in $candidates) {
        $exe = $candidate[0]
        if (-not (Get-Command $exe -ErrorAction SilentlyContinue)) { continue }
        $rest = @($candidate | Select-Object -Skip 1)
        $probe = "import sys; print('%d.%d' % sys.version_info[:2]); print(sys.executable)"
        # Windows PowerShell 5.1 turns a native command's stderr into an error under "Stop"
        $ErrorActionPreference = "Continue"
        $output = & $exe @rest -c $probe 2>$null
        $ErrorActionPreference = "Stop"
        if ($LASTEXITCODE -ne 0 -or -not $output) { continue }
        $lines = @($output)
        if ($lines[0] -eq $PythonVersion) { return $lines[1] }
        $found += "$exe=$($lines[0])"
    }
    throw ("Python $PythonVersion is needed (this bundle's wheels are built for it); found: " +
        $(if ($found) { $found -join ", " } else { "none" }) +
        ". Install Python $PythonVersion from the offline media or pass -Python PATH")
}

# Every file listed in SHA256SUMS must be present with its checksum, bundle.json's file
# count must match, and nothing unlisted may sit in the bundle (pip would use a stray wheel).
function Test-Bundle {
    Say "Checking every file of the bundle against SHA256SUMS..."
    $sums = Join-Path $Here "SHA256SUMS"
    if (-not (Test-Path -LiteralPath $sums -PathType Leaf)) { $script:Corrupt = $true; throw "SHA256SUMS: missing" }
    $listed = @{}
    $problems = New-Object System.Collections.Generic.List[string]
    $number = 0
    foreach ($line in [System.IO.File]::ReadAllLines($sums)) {
        $number++
        $parts = $line -split "  ", 2
        if ($parts.Count -ne 2 -or $parts[0].Length -ne 64 -or $parts[1].StartsWith("/") -or
            ($parts[1] -split "/") -contains "..") {
            $problems.Add("SHA256SUMS line ${number}: malformed"); continue
        }
        $listed[$parts[1]] = $parts[0].ToLowerInvariant()
    }
    Say "  $($listed.Count) files"
    foreach ($name in $listed.Keys) {
        $path = Join-Path $Here ($name -replace "/", "\")
        if (-not (Test-Path -LiteralPath $path -PathType Leaf)) { $problems.Add("${name}: missing"); continue }
        if ((Get-Item -LiteralPath $path).Length -gt 100MB) { Say "  $name..." }
        if ((Get-Sha256 $path) -ne $listed[$name]) {
            $problems.Add("${name}: checksum mismatch (corrupt, truncated or tampered)")
        }
    }
    foreach ($file in Get-ChildItem -LiteralPath $Here -Recurse -File -Force) {
        $name = $file.FullName.Substring($Here.TrimEnd("\").Length + 1).Replace("\", "/")
        if ($name -ne "SHA256SUMS" -and -not $listed.ContainsKey($name) -and $Ignored -notcontains $file.Name) {
            $problems.Add("${name}: not listed in SHA256SUMS (not part of this bundle)")
        }
    }
    $expected = $null
    try { $expected = (Get-Content -Raw -LiteralPath (Join-Path $Here "bundle.json") | ConvertFrom-Json).file_count } catch { }
    if ($listed.ContainsKey("bundle.json") -and $expected -ne $listed.Count) {
        $problems.Add("SHA256SUMS lists $($listed.Count) files, the bundle has $expected")
    }
    if (-not ($listed.ContainsKey("bundle.json") -and $listed.ContainsKey("install.ps1"))) {
        $problems.Add("SHA256SUMS is incomplete (bundle.json or install.ps1 not listed)")
    }
    if ($problems.Count) { $script:Corrupt = $true; throw (($problems | Select-Object -First 20) -join "`n  ") }
    Say "  all checksums match"
}

# The data folder, by the rule app.paths.data_dir follows ($env:AMICUS_HOME, else
# platformdirs' user data folder), found before anything is installed: platformdirs is
# imported straight from its (verified) wheel.
function Find-DataDir([string]$PythonExe) {
    if ($DataDir) { return [System.IO.Path]::GetFullPath($DataDir) }
    $code = @"
import glob, os, sys
home = os.environ.get("AMICUS_HOME")
if not home:
    sys.path.insert(0, sorted(glob.glob(os.path.join(sys.argv[1], "platformdirs-*.whl")))[-1])
    import platformdirs
    home = platformdirs.user_data_dir("amicus")
print(os.path.abspath(os.path.expanduser(home)))
"@
    $result = & $PythonExe -c $code (Join-Path $Here "wheelhouse")
    if ($LASTEXITCODE -ne 0) { throw "could not work out Amicus's data folder" }
    return $result
}

function Get-ReceiptLines([string]$Receipt, [string]$Kind) {
    if (-not (Test-Path -LiteralPath $Receipt)) { return @() }
    return @([System.IO.File]::ReadAllLines($Receipt) | Where-Object { ($_ -split "`t")[0] -eq $Kind } |
        ForEach-Object { , ($_ -split "`t") })
}

function Get-BundleModels {
    return @(Get-ChildItem -LiteralPath (Join-Path $Here "models") -Directory |
        Where-Object { Test-Path -LiteralPath (Join-Path $_.FullName "manifest.json") } |
        ForEach-Object { $_.Name })
}

function Test-Preflight([string]$ModelsDir) {
    $receipt = Join-Path $Prefix $ReceiptName
    if ((Test-Path -LiteralPath $Prefix) -and -not (Test-Path -LiteralPath $receipt)) {
        throw "$Prefix exists and is not an Amicus installation: choose another -Prefix"
    }
    $ours = @(Get-ReceiptLines $receipt "model" | ForEach-Object { $_[1] })
    foreach ($name in Get-BundleModels) {
        $target = Join-Path $ModelsDir $name
        if ((Test-Path -LiteralPath $target) -and $ours -notcontains $name -and -not $Force) {
            throw "$target exists and was not installed by this bundle: remove it (amicus models remove $name) or pass -Force"
        }
    }
}

# --- install ---------------------------------------------------------------------------

function Install-Amicus {
    if ($TargetOs -ne "windows") { throw "this bundle is for ${TargetOs}: run install.sh there" }
    $basePython = Find-Python
    Test-Bundle
    if ($DataDir) { $env:AMICUS_HOME = [System.IO.Path]::GetFullPath($DataDir) }
    $dataHome = Find-DataDir $basePython
    $modelsDir = Join-Path $dataHome "models"
    $pinnedHome = if ($env:AMICUS_HOME) { $dataHome } else { "" }
    Test-Preflight $modelsDir
    Say "Installing Amicus $AmicusVersion into $Prefix, models into $modelsDir"

    $parent = Split-Path -Parent $Prefix
    $created = New-Object System.Collections.Generic.List[string]
    foreach ($dir in @($parent, $dataHome, $modelsDir)) {
        if (-not (Test-Path -LiteralPath $dir)) { New-Item -ItemType Directory -Path $dir | Out-Null; $created.Add($dir) }
    }
    $stage = Join-Path $parent (".amicus-install." + [System.IO.Path]::GetRandomFileName())
    $mstage = Join-Path $modelsDir (".amicus-install." + [System.IO.Path]::GetRandomFileName())
    $undo = New-Object System.Collections.Generic.List[object]
    $done = $false
    $oldPrefix = "$stage.old"
    $oldHome = $env:AMICUS_HOME
    try {
        Say "Creating Amicus's environment (Python $PythonVersion, no network)..."
        Invoke-Native $basePython @("-m", "venv", "$stage\venv")
        $env:PIP_CONFIG_FILE = "nul"; $env:PIP_NO_INPUT = "1"; $env:PIP_DISABLE_PIP_VERSION_CHECK = "1"
        $venvPython = "$stage\venv\Scripts\python.exe"
        Invoke-Native $venvPython @("-m", "pip", "install", "--no-index", "--find-links", "$Here\wheelhouse",
            "--only-binary=:all:", "--no-cache-dir", "--progress-bar", "off", "amicus==$AmicusVersion")
        Invoke-Native $venvPython @("-I", "-c", ("from converters.llama_runtime import gpu_offload_supported, system_info; " +
            "print('llama.cpp: GPU offload ' + ('supported' if gpu_offload_supported() else 'not in this build (CPU)')); " +
            "print('           ' + system_info())"))

        New-Item -ItemType Directory -Path "$mstage\models" | Out-Null
        $names = Get-BundleModels
        foreach ($name in $names) { Copy-Item -LiteralPath (Join-Path $Here "models\$name") -Destination "$mstage\models\$name" -Recurse }
        Say "Checking the copied models with ``amicus models verify``..."
        $env:AMICUS_HOME = $mstage
        Invoke-Native $venvPython (@("-I", "-X", "utf8", "-c", "import sys; from app.cli import main; sys.exit(main())",
            "models", "verify") + $names)
        # One generated token with the smallest chat model proves llama.cpp loads and
        # computes on this machine before anything is committed (a wheel built for
        # another CPU fails here, not on first use).
        $chat = @($names | Where-Object { Test-Path -LiteralPath "$mstage\models\$_\Modelfile" } |
            Sort-Object { (Get-ChildItem -LiteralPath "$mstage\models\$_" -File | Measure-Object Length -Sum).Sum })
        if ($chat) {
            Say "Generating one token with $($chat[0])..."
            $ErrorActionPreference = "Continue"
            $smoke = & $venvPython -I -X utf8 -c "import sys; from app.cli import main; sys.exit(main())" ask $chat[0] "Hello" --max-tokens 1 2>&1
            $status = $LASTEXITCODE
            $ErrorActionPreference = "Stop"
            if ($status -ne 0) {
                $smoke | ForEach-Object { Write-Host $_ }
                throw ("Amicus could not run $($chat[0]) on this machine (exit $status). If llama.cpp stopped on an " +
                    "illegal instruction, this bundle's llama-cpp-python was compiled for a newer CPU: rebuild it " +
                    "with -DGGML_NATIVE=OFF (packaging/README.md)")
            }
            Say "  llama.cpp runs on this machine"
        }
        $env:AMICUS_HOME = $oldHome

        $lines = @("amicus-receipt`t1", "bundle`t$BundleName", "models_dir`t$modelsDir", "path_entry`t$Prefix\bin")
        foreach ($name in $names) { $lines += "model`t$name`t$(Get-Sha256 "$mstage\models\$name\manifest.json")" }
        $old = Join-Path $Prefix $ReceiptName
        if ((Test-Path -LiteralPath $old) -and (@(Get-ReceiptLines $old "models_dir")[0][1] -eq $modelsDir)) {
            foreach ($entry in Get-ReceiptLines $old "model") { if ($names -notcontains $entry[1]) { $lines += ($entry -join "`t") } }
        }
        [System.IO.File]::WriteAllLines("$stage\$ReceiptName", [string[]]$lines)
        Copy-Item -LiteralPath (Join-Path $Here "install.ps1") -Destination "$stage\install.ps1"

        New-Item -ItemType Directory -Path "$stage\bin" | Out-Null
        $launcher = @("@echo off", $LauncherMark, "rem Remove with: powershell -ExecutionPolicy Bypass -File `"$Prefix\install.ps1`" -Uninstall -Prefix `"$Prefix`"")
        if ($pinnedHome) { $launcher += "if not defined AMICUS_HOME set `"AMICUS_HOME=$pinnedHome`"" }
        # -I: the current folder never shadows Amicus's modules; -X utf8: Chinese text in any console code page
        $launcher += "`"$Prefix\venv\Scripts\python.exe`" -I -X utf8 -c `"import sys; from app.cli import main; sys.exit(main())`" %*"
        $launcher += "exit /b %ERRORLEVEL%"
        [System.IO.File]::WriteAllLines("$stage\bin\amicus.cmd", [string[]]$launcher)

        # commit: renames only, undone in reverse order if one fails
        if (Test-Path -LiteralPath $Prefix) { Move-WithRetry $Prefix $oldPrefix; $undo.Add(@($Prefix, $oldPrefix)) }
        Move-WithRetry $stage $Prefix; $undo.Add(@($stage, $Prefix))
        New-Item -ItemType Directory -Path "$mstage\replaced" | Out-Null
        foreach ($name in $names) {
            $target = Join-Path $modelsDir $name
            if (Test-Path -LiteralPath $target) { Move-WithRetry $target "$mstage\replaced\$name"; $undo.Add(@($target, "$mstage\replaced\$name")) }
            Move-WithRetry "$mstage\models\$name" $target; $undo.Add(@("$mstage\models\$name", $target))
        }
        Add-UserPath "$Prefix\bin"
        $done = $true
    }
    finally {
        $env:AMICUS_HOME = $oldHome
        if (-not $done) {
            for ($i = $undo.Count - 1; $i -ge 0; $i--) { Move-Item -LiteralPath $undo[$i][1] -Destination $undo[$i][0] -ErrorAction SilentlyContinue }
            Remove-Item -LiteralPath $stage -Recurse -Force -ErrorAction SilentlyContinue
            for ($i = $created.Count - 1; $i -ge 0; $i--) {
                if (-not (Get-ChildItem -LiteralPath $created[$i] -Force -ErrorAction SilentlyContinue)) { Remove-Item -LiteralPath $created[$i] -ErrorAction SilentlyContinue }
            }
            Write-Host "install.ps1: nothing was installed (everything staged was removed)."
        }
        Remove-Item -LiteralPath $mstage -Recurse -Force -ErrorAction SilentlyContinue
        Remove-Item -LiteralPath $oldPrefix -Recurse -Force -ErrorAction SilentlyContinue
    }
    Say ""
    Say "Amicus $AmicusVersion is installed."
    Say "  command:     $Prefix\bin\amicus.cmd (on your PATH in new terminals)"
    Say "  environment: $Prefix\venv"
    Say "  models:      $modelsDir ($($names -join ', '))"
    Say "Remove it with: powershell -ExecutionPolicy Bypass -File `"$Prefix\install.ps1`" -Uninstall -Prefix `"$Prefix`""
}

function Get-UserPath { return [Environment]::GetEnvironmentVariable("Path", "User") }

function Add-UserPath([string]$Dir) {
    $entries = @((Get-UserPath) -split ";" | Where-Object { $_ })
    if ($entries -notcontains $Dir) {
        [Environment]::SetEnvironmentVariable("Path", (($entries + $Dir) -join ";"), "User")
    }
}

function Remove-UserPath([string]$Dir) {
    $entries = @((Get-UserPath) -split ";" | Where-Object { $_ -and $_ -ne $Dir })
    [Environment]::SetEnvironmentVariable("Path", ($entries -join ";"), "User")
}

# --- uninstall -------------------------------------------------------------------------

function Uninstall-Amicus {
    $receipt = Join-Path $Prefix $ReceiptName
    if (-not (Test-Path -LiteralPath $receipt)) { throw "no Amicus installation at $Prefix (no $ReceiptName); pass -Prefix" }
    $modelsDir = @(Get-ReceiptLines $receipt "models_dir")[0][1]
    foreach ($entry in Get-ReceiptLines $receipt "path_entry") { Remove-UserPath $entry[1]; Say "removed $($entry[1]) from PATH" }
    foreach ($entry in Get-ReceiptLines $receipt "model") {
        $dir = Join-Path $modelsDir $entry[1]
        if (-not (Test-Path -LiteralPath $dir)) { continue }
        $manifest = Join-Path $dir "manifest.json"
        if ((Test-Path -LiteralPath $manifest) -and (Get-Sha256 $manifest) -eq $entry[2]) {
            Remove-Item -LiteralPath $dir -Recurse -Force; Say "removed $dir"
        }
        else { Say "kept ${dir}: it was replaced after installation" }
    }
    Set-Location -LiteralPath $env:TEMP  # a folder in use cannot be deleted on Windows
    Remove-Item -LiteralPath $Prefix -Recurse -Force
    Say "removed $Prefix"
    Say "Conversations and settings in $(Split-Path -Parent $modelsDir) were kept; delete that folder to remove them too."
}

try {
    $Prefix = [System.IO.Path]::GetFullPath($Prefix)
    if ($Uninstall) { Uninstall-Amicus } else { Install-Amicus }
    exit 0
}
catch {
    if (-not $script:Corrupt) {
        Write-Host "install.ps1: error: $($_.Exception.Message)" -ForegroundColor Red
        exit 1
    }
    Write-Host "install.ps1: error: this bundle is corrupt or incomplete; nothing was installed." -ForegroundColor Red
    Write-Host "  $($_.Exception.Message)"
    Write-Host "Copy the archive again (compare its sha256 with the .sha256 file made with it), extract it into an empty folder and run install.ps1 again."
    exit 3
}
