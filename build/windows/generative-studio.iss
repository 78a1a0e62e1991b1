; Inno Setup script for Generative Studio (https://jrsoftware.org/isinfo.php).
; Build the bundle first (`make bundle`), then, from the checkout's root on Windows:
;   iscc /DAppVersion=0.1.0 build\windows\generative-studio.iss
; (the release workflow passes the version read from pyproject.toml through build/meta.py).
; The installer lands in dist\installer\. It installs per user by default (no administrator
; rights needed; the dialog offers all users), adds a Start menu entry for the windowed app and,
; optionally, the console `studio` command's folder to the user's PATH.

#ifndef AppVersion
  #define AppVersion "0.0.0"
#endif
#ifndef SourceDir
  #define SourceDir "..\..\dist\GenerativeStudio"
#endif
#define AppName "Generative Studio"
#define AppExe "GenerativeStudio.exe"

[Setup]
; a fixed AppId: upgrades replace the old version instead of installing beside it
AppId={{6F0B6E0C-5C1B-4B8E-9E58-3F1E7A2C9D41}
AppName={#AppName}
AppVersion={#AppVersion}
AppVerName={#AppName} {#AppVersion}
AppPublisher=Generative Studio developers
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir=..\..\dist\installer
OutputBaseFilename=GenerativeStudio-{#AppVersion}-windows-x64-setup
SetupIconFile=..\..\resources\icons\generative-studio.ico
UninstallDisplayIcon={app}\{#AppExe}
; torch's libraries are large: LZMA2 in one solid block halves the download
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
ChangesEnvironment=yes

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked
Name: "addtopath"; Description: "Add the 'studio' command to PATH"; Flags: unchecked

[Files]
Source: "{#SourceDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\{#AppName}"; Filename: "{app}\{#AppExe}"
Name: "{group}\{cm:UninstallProgram,{#AppName}}"; Filename: "{uninstallexe}"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\{#AppExe}"; Tasks: desktopicon

[Registry]
Root: HKCU; Subkey: "Environment"; ValueType: expandsz; ValueName: "Path"; \
    ValueData: "{olddata};{app}"; Tasks: addtopath; Check: NeedsAddPath(ExpandConstant('{app}'))

[Run]
Filename: "{app}\{#AppExe}"; Description: "{cm:LaunchProgram,{#AppName}}"; Flags: nowait postinstall skipifsilent

[Code]
function NeedsAddPath(Dir: string): Boolean;
var
  Current: string;
begin
  if not RegQueryStringValue(HKEY_CURRENT_USER, 'Environment', 'Path', Current) then
  begin
    Result := True;
    exit;
  end;
  Result := Pos(';' + Uppercase(Dir) + ';', ';' + Uppercase(Current) + ';') = 0;
end;
