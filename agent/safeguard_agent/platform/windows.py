"""The Windows probe, written against the documented Win32 API through ctypes.

**Not run on Windows here.** The machine this was built on has no Windows. The adapter calls every OS
function through a `Win32Api` object, and the unit tests (`agent/tests/test_platform_windows.py`, named
`test_windows_adapter_with_faked_win32_*`) hand it fake functions that behave as the documentation says
(fill the caller's buffer, set the out-parameter, return the documented value), so the logic around the
calls — buffer sizing, two-call enumeration, handle closing, error paths — is tested, but the true OS
behaviour and the structure layouts on Windows are not. This module imports on any OS: the DLLs load on
first use.

What the Windows adapter can and cannot tell:

- **Foreground window**: `GetForegroundWindow` + `GetWindowTextW`; the owner from
  `GetWindowThreadProcessId` + `OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION)` +
  `QueryFullProcessImageNameW` ("chrome.exe"). Store apps run inside ApplicationFrameHost.exe: the real
  app is found among its child windows (`EnumChildWindows`).
- **Password fields: classic controls only.** `GetGUIThreadInfo` gives the focused control of the
  foreground thread; if it is an Edit control (also WinForms' and RichEdit's) its `ES_PASSWORD` style
  answers True/False. Browsers, Electron, WPF, UWP and Java draw their own fields: for them the answer is
  None (cannot tell). UI Automation's `IsPassword` property would tell for those — a later step.
- **Browser URLs: from window titles only**, as on Linux: a browser's title is the page title. Reading the
  address bar needs UI Automation (or a browser extension); not here.
- **Applications**: `CreateToolhelp32Snapshot` + `Process32FirstW/NextW`; an application is a process
  owning a visible, unowned, titled top-level window (`EnumWindows`), which leaves services out.
- **Print jobs**: `EnumPrintersW` (local and connected printers) + `OpenPrinterW` + `EnumJobsW`
  (JOB_INFO_1: document, user, total pages). The spooler forgets a job once printed unless the printer
  keeps printed documents, so a job that spools and prints between two polls can be missed.
- **User**: `GetUserNameExW(NameSamCompatible)` — "SCHOOL\\jsmith" (a local account: "PC-12\\jsmith").
- **User folders**: `SHGetKnownFolderPath` for Documents, Desktop, Downloads, Pictures, Videos, Music
  (this follows folder redirection to a network share).
"""

from __future__ import annotations

import ctypes
import os
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from safeguard_agent.platform.base import PrintJob, ProcessInfo, WindowInfo, url_from_title

# Fixed-size Win32 types, so the structures have their Windows layout whatever OS imports this.
DWORD = ctypes.c_uint32
LONG = ctypes.c_int32
BOOL = ctypes.c_int32
WORD = ctypes.c_uint16
HANDLE = ctypes.c_void_p
HWND = ctypes.c_void_p
LPARAM = ctypes.c_ssize_t
ULONG_PTR = ctypes.c_size_t
LPWSTR = ctypes.c_wchar_p

MAX_PATH = 260
PROCESS_QUERY_LIMITED_INFORMATION = 0x1000
TH32CS_SNAPPROCESS = 0x00000002
INVALID_HANDLE_VALUE = ctypes.c_void_p(-1).value
GWL_STYLE = -16
ES_PASSWORD = 0x0020
GW_OWNER = 4
PRINTER_ENUM_LOCAL = 0x00000002
PRINTER_ENUM_CONNECTIONS = 0x00000004
JOB_STATUS_DELETED = 0x00000100
JOB_STATUS_PRINTED = 0x00000080
JOB_STATUS_COMPLETE = 0x00001000
NAME_SAM_COMPATIBLE = 2
MAX_JOBS = 0xFFFFFFFF


class RECT(ctypes.Structure):
    _fields_ = [("left", LONG), ("top", LONG), ("right", LONG), ("bottom", LONG)]


class GUITHREADINFO(ctypes.Structure):
    _fields_ = [
        ("cbSize", DWORD),
        ("flags", DWORD),
        ("hwndActive", HWND),
        ("hwndFocus", HWND),
        ("hwndCapture", HWND),
        ("hwndMenuOwner", HWND),
        ("hwndMoveSize", HWND),
        ("hwndCaret", HWND),
        ("rcCaret", RECT),
    ]


class PROCESSENTRY32W(ctypes.Structure):
    _fields_ = [
        ("dwSize", DWORD),
        ("cntUsage", DWORD),
        ("th32ProcessID", DWORD),
        ("th32DefaultHeapID", ULONG_PTR),
        ("th32ModuleID", DWORD),
        ("cntThreads", DWORD),
        ("th32ParentProcessID", DWORD),
        ("pcPriClassBase", LONG),
        ("dwFlags", DWORD),
        ("szExeFile", ctypes.c_wchar * MAX_PATH),
    ]


class PRINTER_INFO_4W(ctypes.Structure):
    _fields_ = [("pPrinterName", LPWSTR), ("pServerName", LPWSTR), ("Attributes", DWORD)]


class SYSTEMTIME(ctypes.Structure):
    _fields_ = [
        (name, WORD)
        for name in ("wYear", "wMonth", "wDayOfWeek", "wDay", "wHour", "wMinute", "wSecond", "wMilliseconds")
    ]


class JOB_INFO_1W(ctypes.Structure):
    _fields_ = [
        ("JobId", DWORD),
        ("pPrinterName", LPWSTR),
        ("pMachineName", LPWSTR),
        ("pUserName", LPWSTR),
        ("pDocument", LPWSTR),
        ("pDatatype", LPWSTR),
        ("pStatus", LPWSTR),
        ("Status", DWORD),
        ("Priority", DWORD),
        ("Position", DWORD),
        ("TotalPages", DWORD),
        ("PagesPrinted", DWORD),
        ("Submitted", SYSTEMTIME),
    ]


class GUID(ctypes.Structure):
    _fields_ = [
        ("Data1", ctypes.c_uint32),
        ("Data2", ctypes.c_uint16),
        ("Data3", ctypes.c_uint16),
        ("Data4", ctypes.c_ubyte * 8),
    ]

    @classmethod
    def parse(cls, text: str) -> GUID:
        value = uuid.UUID(text)
        data4 = (ctypes.c_ubyte * 8)(*value.bytes[8:])
        return cls(value.fields[0], value.fields[1], value.fields[2], data4)


# KNOWNFOLDERID values (KnownFolders.h), in the order the monitors watch them.
KNOWN_FOLDERS = {
    "Documents": "FDD39AD0-238F-46AF-ADB4-6C85480369C7",
    "Desktop": "B4BFCC3A-DB2C-424C-B029-7FE99A87C641",
    "Downloads": "374DE290-123F-4565-9164-39C4925E467B",
    "Pictures": "33E28130-4E1E-4676-835A-98395C3BC3BB",
    "Videos": "18989B1D-99B5-455B-841C-AB7C74E4DDFC",
    "Music": "4BD8D571-6D19-48D3-BE97-422220080E43",
}

# EnumWindows' callback type. WINFUNCTYPE (stdcall) exists only on Windows; on x64 there is one calling
# convention anyway, and elsewhere (the tests) CFUNCTYPE builds the same callable.
_FUNCTYPE = getattr(ctypes, "WINFUNCTYPE", ctypes.CFUNCTYPE)
WNDENUMPROC = _FUNCTYPE(BOOL, HWND, LPARAM)

P = ctypes.POINTER
# name -> (DLL, return type, argument types): the documented signatures.
_SIGNATURES: dict[str, tuple[str, Any, list[Any]]] = {
    "GetForegroundWindow": ("user32", HWND, []),
    "GetWindowTextLengthW": ("user32", ctypes.c_int, [HWND]),
    "GetWindowTextW": ("user32", ctypes.c_int, [HWND, LPWSTR, ctypes.c_int]),
    "GetWindowThreadProcessId": ("user32", DWORD, [HWND, P(DWORD)]),
    "GetGUIThreadInfo": ("user32", BOOL, [DWORD, P(GUITHREADINFO)]),
    "GetClassNameW": ("user32", ctypes.c_int, [HWND, LPWSTR, ctypes.c_int]),
    "GetWindowLongW": ("user32", LONG, [HWND, ctypes.c_int]),
    "EnumWindows": ("user32", BOOL, [WNDENUMPROC, LPARAM]),
    "EnumChildWindows": ("user32", BOOL, [HWND, WNDENUMPROC, LPARAM]),
    "IsWindowVisible": ("user32", BOOL, [HWND]),
    "GetWindow": ("user32", HWND, [HWND, ctypes.c_uint]),
    "OpenProcess": ("kernel32", HANDLE, [DWORD, BOOL, DWORD]),
    "QueryFullProcessImageNameW": ("kernel32", BOOL, [HANDLE, DWORD, LPWSTR, P(DWORD)]),
    "CloseHandle": ("kernel32", BOOL, [HANDLE]),
    "CreateToolhelp32Snapshot": ("kernel32", HANDLE, [DWORD, DWORD]),
    "Process32FirstW": ("kernel32", BOOL, [HANDLE, P(PROCESSENTRY32W)]),
    "Process32NextW": ("kernel32", BOOL, [HANDLE, P(PROCESSENTRY32W)]),
    "EnumPrintersW": ("winspool.drv", BOOL, [DWORD, LPWSTR, DWORD, ctypes.c_void_p, DWORD, P(DWORD), P(DWORD)]),
    "OpenPrinterW": ("winspool.drv", BOOL, [LPWSTR, P(HANDLE), ctypes.c_void_p]),
    "EnumJobsW": ("winspool.drv", BOOL, [HANDLE, DWORD, DWORD, DWORD, ctypes.c_void_p, DWORD, P(DWORD), P(DWORD)]),
    "ClosePrinter": ("winspool.drv", BOOL, [HANDLE]),
    "GetUserNameExW": ("secur32", BOOL, [ctypes.c_int, LPWSTR, P(ctypes.c_ulong)]),
    "GetUserNameW": ("advapi32", BOOL, [LPWSTR, P(DWORD)]),
    "SHGetKnownFolderPath": ("shell32", ctypes.c_long, [P(GUID), DWORD, HANDLE, P(LPWSTR)]),
    "CoTaskMemFree": ("ole32", None, [ctypes.c_void_p]),
}


class Win32Api:
    """The Win32 functions the probe calls, loaded from their DLLs on first use.

    Tests pass fakes by name (`Win32Api(GetForegroundWindow=fake, ...)`); a function neither faked nor
    loadable (any call on a non-Windows OS) raises NotImplementedError naming it, so a test that forgot a
    fake fails loudly instead of reaching for a DLL that does not exist.
    """

    def __init__(self, **functions: Callable[..., Any]) -> None:
        unknown = set(functions) - set(_SIGNATURES)
        if unknown:
            raise TypeError(f"not a Win32 function the probe uses: {sorted(unknown)}")
        self._functions: dict[str, Callable[..., Any]] = dict(functions)
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_") or name not in _SIGNATURES:
            raise AttributeError(name)
        with self._lock:
            if name not in self._functions:
                self._functions[name] = self._load(name)
            return self._functions[name]

    @staticmethod
    def _load(name: str) -> Callable[..., Any]:
        dll_name, restype, argtypes = _SIGNATURES[name]
        windll = getattr(ctypes, "WinDLL", None)
        if windll is None:
            raise NotImplementedError(f"{name} ({dll_name}) is a Windows function; this is {os.name}")
        function = getattr(windll(dll_name, use_last_error=True), name)
        function.restype = restype
        function.argtypes = argtypes
        return function


def _is_edit_class(class_name: str) -> bool:
    """Window classes that honour ES_PASSWORD: the Edit control and the toolkits built on it."""
    name = class_name.lower()
    return name == "edit" or name.startswith("richedit") or ".edit." in name or name in ("tedit", "tmaskedit")


class WindowsProbe:
    """The probe for Windows desktops (Windows 10/11, the agent running in the user's session)."""

    def __init__(self, api: Win32Api | None = None) -> None:
        self.api = api or Win32Api()
        self._paths: dict[tuple[int, str], str] = {}
        self._processes_lock = threading.Lock()  # the keyboard and activity threads both list processes

    # -- windows ---------------------------------------------------------------------------------------
    def foreground_window(self) -> WindowInfo | None:
        hwnd = self.api.GetForegroundWindow()
        if not hwnd:
            return None
        pid = self._window_pid(hwnd)
        path = self._process_path(pid) if pid else ""
        if os.path.basename(path.replace("\\", "/")).lower() == "applicationframehost.exe":
            pid, path = self._store_app(hwnd, pid, path)
        application = path.replace("\\", "/").rsplit("/", 1)[-1]
        if not application and pid:
            # A protected process will not open even for its name: the process list still names it.
            info = self.running_processes().get(pid)
            application = info.name if info else ""
        return WindowInfo(
            title=self._window_text(hwnd), application=application, pid=pid, window_id=int(hwnd), path=path
        )

    def _window_text(self, hwnd: int) -> str:
        length = self.api.GetWindowTextLengthW(hwnd)
        if length <= 0:
            return ""
        buffer = ctypes.create_unicode_buffer(length + 1)
        copied = self.api.GetWindowTextW(hwnd, buffer, length + 1)
        return buffer.value[: max(copied, 0)]

    def _window_pid(self, hwnd: int) -> int | None:
        pid = DWORD(0)
        self.api.GetWindowThreadProcessId(hwnd, ctypes.byref(pid))
        return pid.value or None

    def _process_path(self, pid: int) -> str:
        handle = self.api.OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, False, pid)
        if not handle:
            return ""  # a protected or elevated process: its path stays unknown
        try:
            size = DWORD(32768)
            buffer = ctypes.create_unicode_buffer(size.value)
            if not self.api.QueryFullProcessImageNameW(handle, 0, buffer, ctypes.byref(size)):
                return ""
            return buffer.value[: size.value]
        finally:
            self.api.CloseHandle(handle)

    def _store_app(self, hwnd: int, host_pid: int | None, host_path: str) -> tuple[int | None, str]:
        """A Store app's frame belongs to ApplicationFrameHost.exe; its content window, a child, to the app."""
        found: list[int] = []

        def visit(child: int, _lparam: int) -> bool:
            pid = self._window_pid(child)
            if pid and pid != host_pid:
                found.append(pid)
                return False
            return True

        self.api.EnumChildWindows(hwnd, WNDENUMPROC(visit), 0)
        if found:
            return found[0], self._process_path(found[0])
        return host_pid, host_path

    def focused_field_is_password(self) -> bool | None:
        hwnd = self.api.GetForegroundWindow()
        if not hwnd:
            return None
        thread_id = self.api.GetWindowThreadProcessId(hwnd, None)
        info = GUITHREADINFO()
        info.cbSize = ctypes.sizeof(GUITHREADINFO)
        if not thread_id or not self.api.GetGUIThreadInfo(thread_id, ctypes.byref(info)):
            return None
        focus = info.hwndFocus
        if not focus:
            return None
        buffer = ctypes.create_unicode_buffer(256)
        length = self.api.GetClassNameW(focus, buffer, 256)
        if length <= 0 or not _is_edit_class(buffer.value[:length]):
            return None  # a browser, Electron, WPF or UWP field: its style says nothing
        style = self.api.GetWindowLongW(focus, GWL_STYLE) & 0xFFFFFFFF
        return bool(style & ES_PASSWORD)

    def browser_url(self, window: WindowInfo) -> str | None:
        return url_from_title(window.title, window.application)

    def window_pids(self) -> set[int]:
        pids: set[int] = set()

        def visit(hwnd: int, _lparam: int) -> bool:
            if (
                self.api.IsWindowVisible(hwnd)
                and not self.api.GetWindow(hwnd, GW_OWNER)
                and self.api.GetWindowTextLengthW(hwnd) > 0
            ):
                pid = self._window_pid(hwnd)
                if pid:
                    pids.add(pid)
            return True

        self.api.EnumWindows(WNDENUMPROC(visit), 0)
        return pids

    # -- processes -------------------------------------------------------------------------------------
    def running_processes(self) -> dict[int, ProcessInfo]:
        with self._processes_lock:
            return self._running_processes()

    def _running_processes(self) -> dict[int, ProcessInfo]:
        snapshot = self.api.CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0)
        if not snapshot or snapshot == INVALID_HANDLE_VALUE:
            return {}
        processes: dict[int, ProcessInfo] = {}
        try:
            entry = PROCESSENTRY32W()
            entry.dwSize = ctypes.sizeof(PROCESSENTRY32W)
            more = self.api.Process32FirstW(snapshot, ctypes.byref(entry))
            while more:
                pid, name = int(entry.th32ProcessID), entry.szExeFile
                if pid:  # 0 is the System Idle Process
                    key = (pid, name)
                    if key not in self._paths:
                        self._paths[key] = self._process_path(pid)
                    processes[pid] = ProcessInfo(name=name, path=self._paths[key])
                more = self.api.Process32NextW(snapshot, ctypes.byref(entry))
        finally:
            self.api.CloseHandle(snapshot)
        # Forget the paths of processes that exited, so the cache follows the process list.
        self._paths = {key: path for key, path in self._paths.items() if processes.get(key[0], None) is not None}
        return processes

    # -- printing --------------------------------------------------------------------------------------
    def _enumerate(self, call: Callable[..., Any], structure: type[ctypes.Structure]) -> list[Any]:
        """The two-call pattern of EnumPrintersW/EnumJobsW: ask the size, allocate, fetch."""
        needed, returned = DWORD(0), DWORD(0)
        call(None, 0, ctypes.byref(needed), ctypes.byref(returned))
        if needed.value == 0:
            return []
        buffer = ctypes.create_string_buffer(needed.value)
        if not call(buffer, needed.value, ctypes.byref(needed), ctypes.byref(returned)):
            return []
        array = (structure * returned.value).from_buffer(buffer)
        # Read every field now: the strings live inside `buffer`, which is freed when we return.
        return [{name: getattr(item, name) for name, _ in structure._fields_} for item in array]

    def print_jobs(self) -> list[PrintJob]:
        printers = self._enumerate(
            lambda buf, size, needed, returned: self.api.EnumPrintersW(
                PRINTER_ENUM_LOCAL | PRINTER_ENUM_CONNECTIONS, None, 4, buf, size, needed, returned
            ),
            PRINTER_INFO_4W,
        )
        me = self._plain_user_name().lower()
        jobs: list[PrintJob] = []
        for printer in printers:
            name = printer["pPrinterName"] or ""
            handle = HANDLE()
            if not name or not self.api.OpenPrinterW(name, ctypes.byref(handle), None):
                continue
            try:
                entries = self._enumerate(
                    lambda buf, size, needed, returned, handle=handle: self.api.EnumJobsW(
                        handle, 0, MAX_JOBS, 1, buf, size, needed, returned
                    ),
                    JOB_INFO_1W,
                )
            finally:
                self.api.ClosePrinter(handle)
            for job in entries:
                user = job["pUserName"] or ""
                if me and user and user.lower() != me:
                    continue  # another account's job on a shared printer
                jobs.append(
                    PrintJob(
                        id=f"{name}:{job['JobId']}",
                        document=job["pDocument"] or "",
                        printer=name,
                        pages=int(job["TotalPages"]) or None,
                        user=user,
                        finished=bool(job["Status"] & (JOB_STATUS_PRINTED | JOB_STATUS_COMPLETE | JOB_STATUS_DELETED)),
                    )
                )
        return jobs

    # -- user ------------------------------------------------------------------------------------------
    def user_name(self) -> str:
        """DOMAIN\\name from GetUserNameExW(NameSamCompatible); USERDOMAIN\\USERNAME if that fails."""
        size = ctypes.c_ulong(0)
        self.api.GetUserNameExW(NAME_SAM_COMPATIBLE, None, ctypes.byref(size))
        if size.value:
            buffer = ctypes.create_unicode_buffer(size.value + 1)
            if self.api.GetUserNameExW(NAME_SAM_COMPATIBLE, buffer, ctypes.byref(size)):
                return buffer.value
        domain, name = os.environ.get("USERDOMAIN", ""), os.environ.get("USERNAME", "")
        return f"{domain}\\{name}" if domain and name else name

    def _plain_user_name(self) -> str:
        size = DWORD(257)  # UNLEN + 1
        buffer = ctypes.create_unicode_buffer(size.value)
        if self.api.GetUserNameW(buffer, ctypes.byref(size)):
            return buffer.value
        return os.environ.get("USERNAME", "")

    def user_folders(self) -> list[Path]:
        folders: list[Path] = []
        for folder_id in KNOWN_FOLDERS.values():
            pointer = LPWSTR()
            result = self.api.SHGetKnownFolderPath(ctypes.byref(GUID.parse(folder_id)), 0, None, ctypes.byref(pointer))
            try:
                if result == 0 and pointer.value:
                    path = Path(pointer.value)
                    if os.path.isdir(path) and path not in folders:
                        folders.append(path)
            finally:
                self.api.CoTaskMemFree(pointer)  # documented: free it even when the call failed
        return folders

    def close(self) -> None:
        pass
