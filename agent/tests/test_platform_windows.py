"""The Windows probe with the Win32 API FAKED at the adapter boundary (`Win32Api`).

This machine has no Windows. `FakeDesktop` implements each Win32 function the probe calls the way Microsoft
documents it — filling the caller's buffer, setting out-parameters through the pointer it was given,
answering the size query of a two-call enumeration, returning 0 on failure — over an in-memory desktop
(windows, processes, printers). These tests therefore check the adapter's logic (buffer sizing, pointer
handling, handle closing, fallbacks, filters); whether Windows itself behaves as documented is not tested
here. Every test is named `test_windows_adapter_with_faked_win32_*` to say so.
"""

import ctypes
from dataclasses import dataclass, field

import pytest

from safeguard_agent.platform.base import PrintJob, ProcessInfo, WindowInfo
from safeguard_agent.platform.windows import (
    ES_PASSWORD,
    GUID,
    INVALID_HANDLE_VALUE,
    JOB_INFO_1W,
    JOB_STATUS_PRINTED,
    KNOWN_FOLDERS,
    PRINTER_INFO_4W,
    Win32Api,
    WindowsProbe,
)

WS_VISIBLE_EDIT = 0x50010080  # WS_CHILD | WS_VISIBLE | WS_TABSTOP | ES_AUTOHSCROLL


@dataclass
class Window:
    title: str
    pid: int
    thread: int = 1
    class_name: str = "Window"
    style: int = 0
    visible: bool = True
    owner: int = 0
    children: list[int] = field(default_factory=list)
    focus: int = 0  # the focused control of this window's thread (GetGUIThreadInfo)


@dataclass
class Process:
    name: str
    path: str
    openable: bool = True


@dataclass
class Job:
    job_id: int
    document: str
    user: str
    pages: int = 0
    status: int = 0


class FakeDesktop:
    """An in-memory Windows session answering the Win32 calls the probe makes."""

    def __init__(self) -> None:
        self.windows: dict[int, Window] = {}
        self.processes: dict[int, Process] = {}
        self.printers: dict[str, list[Job]] = {}
        self.foreground = 0
        self.sam_name = "SCHOOL\\jsmith"
        self.user = "jsmith"
        self.folders: dict[str, str] = {}  # KNOWNFOLDERID text -> path
        self.open_handles: set[int] = set()
        self.calls: list[str] = []
        self.freed: list[int] = []
        self._next_handle = 0x1000
        self._keep_alive: list[object] = []

    # -- helpers ---------------------------------------------------------------------------------------
    def _handle(self, kind: str) -> int:
        self._next_handle += 4
        self.open_handles.add(self._next_handle)
        return self._next_handle

    @staticmethod
    def _set(ref, value) -> None:
        """Write through an out-parameter the probe passed as ctypes.byref(x)."""
        ref._obj.value = value

    def api(self, **overrides) -> Win32Api:
        names = [
            "GetForegroundWindow",
            "GetWindowTextLengthW",
            "GetWindowTextW",
            "GetWindowThreadProcessId",
            "GetGUIThreadInfo",
            "GetClassNameW",
            "GetWindowLongW",
            "EnumWindows",
            "EnumChildWindows",
            "IsWindowVisible",
            "GetWindow",
            "OpenProcess",
            "QueryFullProcessImageNameW",
            "CloseHandle",
            "CreateToolhelp32Snapshot",
            "Process32FirstW",
            "Process32NextW",
            "EnumPrintersW",
            "OpenPrinterW",
            "EnumJobsW",
            "ClosePrinter",
            "GetUserNameExW",
            "GetUserNameW",
            "SHGetKnownFolderPath",
            "CoTaskMemFree",
        ]
        functions = {name: getattr(self, name) for name in names}
        functions.update(overrides)
        return Win32Api(**functions)

    # -- user32 ----------------------------------------------------------------------------------------
    def GetForegroundWindow(self):
        return self.foreground or None  # HWND restype: NULL comes back as None

    def GetWindowTextLengthW(self, hwnd):
        window = self.windows.get(hwnd)
        return len(window.title) if window else 0

    def GetWindowTextW(self, hwnd, buffer, max_count):
        window = self.windows.get(hwnd)
        if window is None or max_count <= 0:
            return 0
        text = window.title[: max_count - 1]
        buffer.value = text
        return len(text)

    def GetWindowThreadProcessId(self, hwnd, pid_ref):
        window = self.windows.get(hwnd)
        if window is None:
            return 0
        if pid_ref is not None:
            self._set(pid_ref, window.pid)
        return window.thread

    def GetGUIThreadInfo(self, thread_id, info_ref):
        info = info_ref._obj
        assert info.cbSize == ctypes.sizeof(info), "cbSize must be set before the call"
        owner = next((w for w in self.windows.values() if w.thread == thread_id and w.focus), None)
        if owner is None:
            return 0
        info.hwndFocus = owner.focus
        info.hwndActive = self.foreground
        return 1

    def GetClassNameW(self, hwnd, buffer, max_count):
        window = self.windows.get(hwnd)
        if window is None:
            return 0
        buffer.value = window.class_name[: max_count - 1]
        return len(buffer.value)

    def GetWindowLongW(self, hwnd, index):
        assert index == -16  # GWL_STYLE
        style = self.windows[hwnd].style
        return style - (1 << 32) if style & 0x80000000 else style  # a LONG: signed

    def EnumWindows(self, callback, lparam):
        for hwnd in list(self.windows):
            if not any(hwnd in w.children for w in self.windows.values()):
                if not callback(hwnd, lparam):
                    break
        return 1

    def EnumChildWindows(self, parent, callback, lparam):
        for child in self.windows[parent].children:
            if not callback(child, lparam):
                break
        return 1

    def IsWindowVisible(self, hwnd):
        return int(self.windows[hwnd].visible)

    def GetWindow(self, hwnd, command):
        assert command == 4  # GW_OWNER
        return self.windows[hwnd].owner or None

    # -- kernel32 --------------------------------------------------------------------------------------
    def OpenProcess(self, access, inherit, pid):
        assert access == 0x1000  # PROCESS_QUERY_LIMITED_INFORMATION: the least that answers
        process = self.processes.get(pid)
        if process is None or not process.openable:
            return None
        handle = self._handle("process")
        self._process_handles = getattr(self, "_process_handles", {})
        self._process_handles[handle] = pid
        self.calls.append(f"OpenProcess:{pid}")
        return handle

    def QueryFullProcessImageNameW(self, handle, flags, buffer, size_ref):
        pid = self._process_handles[handle]
        path = self.processes[pid].path
        if size_ref._obj.value <= len(path):
            return 0
        buffer.value = path
        self._set(size_ref, len(path))
        return 1

    def CloseHandle(self, handle):
        if handle not in self.open_handles:
            raise AssertionError(f"CloseHandle on a handle that is not open: {handle}")
        self.open_handles.discard(handle)
        return 1

    def CreateToolhelp32Snapshot(self, flags, pid):
        assert flags == 2  # TH32CS_SNAPPROCESS
        handle = self._handle("snapshot")
        self._snapshots = getattr(self, "_snapshots", {})
        self._snapshots[handle] = [0, *self.processes]  # the System Idle Process comes first
        return handle

    def _next_entry(self, handle, entry_ref):
        entry = entry_ref._obj
        assert entry.dwSize == ctypes.sizeof(entry), "dwSize must be set before Process32FirstW"
        remaining = self._snapshots[handle]
        if not remaining:
            return 0
        pid = remaining.pop(0)
        entry.th32ProcessID = pid
        entry.szExeFile = "[System Process]" if pid == 0 else self.processes[pid].name
        return 1

    def Process32FirstW(self, handle, entry_ref):
        return self._next_entry(handle, entry_ref)

    def Process32NextW(self, handle, entry_ref):
        return self._next_entry(handle, entry_ref)

    # -- winspool --------------------------------------------------------------------------------------
    def _two_call(self, items, structure, buffer, size, needed_ref, returned_ref):
        """The documented contract: a too-small buffer fails with the size needed; a big enough one is filled."""
        array = (structure * len(items))(*items)
        self._keep_alive.append(array)  # the strings the structures point to must outlive the call
        needed = ctypes.sizeof(array)
        self._set(needed_ref, needed)
        if buffer is None or size < needed:
            self._set(returned_ref, 0)
            return 0
        ctypes.memmove(buffer, array, needed)
        self._set(returned_ref, len(items))
        return 1

    def EnumPrintersW(self, flags, name, level, buffer, size, needed_ref, returned_ref):
        assert flags == 0x2 | 0x4 and level == 4  # local and connected printers, PRINTER_INFO_4
        items = [PRINTER_INFO_4W(printer, None, 0) for printer in self.printers]
        return self._two_call(items, PRINTER_INFO_4W, buffer, size, needed_ref, returned_ref)

    def OpenPrinterW(self, name, handle_ref, defaults):
        if name not in self.printers:
            return 0
        handle = self._handle("printer")
        self._printer_handles = getattr(self, "_printer_handles", {})
        self._printer_handles[handle] = name
        handle_ref._obj.value = handle
        return 1

    def EnumJobsW(self, handle, first, count, level, buffer, size, needed_ref, returned_ref):
        assert level == 1
        printer = self._printer_handles[handle.value]
        jobs = self.printers[printer][first : first + count]
        items = [
            JOB_INFO_1W(
                JobId=job.job_id,
                pPrinterName=printer,
                pUserName=job.user,
                pDocument=job.document,
                Status=job.status,
                TotalPages=job.pages,
            )
            for job in jobs
        ]
        return self._two_call(items, JOB_INFO_1W, buffer, size, needed_ref, returned_ref)

    def ClosePrinter(self, handle):
        return self.CloseHandle(handle.value)

    # -- secur32, advapi32, shell32, ole32 -------------------------------------------------------------
    def GetUserNameExW(self, name_format, buffer, size_ref):
        assert name_format == 2  # NameSamCompatible: DOMAIN\name
        if self.sam_name is None:
            return 0
        if buffer is None or size_ref._obj.value <= len(self.sam_name):
            self._set(size_ref, len(self.sam_name) + 1)  # documented: the size including the terminator
            return 0
        buffer.value = self.sam_name
        self._set(size_ref, len(self.sam_name))
        return 1

    def GetUserNameW(self, buffer, size_ref):
        buffer.value = self.user
        self._set(size_ref, len(self.user) + 1)
        return 1

    def SHGetKnownFolderPath(self, folder_id_ref, flags, token, path_ref):
        guid = folder_id_ref._obj
        for text, path in self.folders.items():
            if bytes(guid) == bytes(GUID.parse(text)):
                path_ref._obj.value = path
                return 0  # S_OK
        return -2147024894  # HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND)

    def CoTaskMemFree(self, pointer):
        self.freed.append(id(pointer))


@pytest.fixture
def desktop() -> FakeDesktop:
    desk = FakeDesktop()
    desk.processes = {
        4: Process("System", "", openable=False),
        612: Process("svchost.exe", r"C:\Windows\System32\svchost.exe"),
        1200: Process("chrome.exe", r"C:\Program Files\Google\Chrome\Application\chrome.exe"),
        1300: Process("notepad.exe", r"C:\Windows\System32\notepad.exe"),
        1400: Process("ApplicationFrameHost.exe", r"C:\Windows\System32\ApplicationFrameHost.exe"),
        1500: Process("Calculator.exe", r"C:\Program Files\WindowsApps\Microsoft.WindowsCalculator\Calculator.exe"),
        1600: Process("Taskmgr.exe", r"C:\Windows\System32\Taskmgr.exe", openable=False),
    }
    desk.windows = {
        0x100: Window("BBC News - Home - Google Chrome", 1200, thread=21, class_name="Chrome_WidgetWin_1", focus=0x101),
        0x101: Window("", 1200, thread=21, class_name="Chrome_RenderWidgetHostHWND"),
        0x200: Window("Untitled - Notepad", 1300, thread=31, class_name="Notepad", focus=0x201, children=[0x201]),
        0x201: Window("", 1300, thread=31, class_name="Edit", style=WS_VISIBLE_EDIT),
        0x300: Window("Calculator", 1400, thread=41, class_name="ApplicationFrameWindow", children=[0x301]),
        0x301: Window("Calculator", 1500, thread=51, class_name="Windows.UI.Core.CoreWindow"),
        0x400: Window("Task Manager", 1600, thread=61),
        0x500: Window("", 612, thread=71, visible=False),  # a service's hidden window
        0x600: Window("Find", 1300, thread=31, owner=0x200),  # an owned dialog: not an application of its own
    }
    return desk


def probe_of(desktop: FakeDesktop, **overrides) -> WindowsProbe:
    return WindowsProbe(desktop.api(**overrides))


# --- foreground window ------------------------------------------------------------------------------
def test_windows_adapter_with_faked_win32_reports_the_foreground_window(desktop):
    desktop.foreground = 0x100

    window = probe_of(desktop).foreground_window()

    assert window == WindowInfo(
        title="BBC News - Home - Google Chrome",
        application="chrome.exe",
        pid=1200,
        window_id=0x100,
        path=r"C:\Program Files\Google\Chrome\Application\chrome.exe",
    )
    assert desktop.open_handles == set()  # the process handle was closed


def test_windows_adapter_with_faked_win32_reports_no_window_when_nothing_has_the_focus(desktop):
    desktop.foreground = 0

    assert probe_of(desktop).foreground_window() is None


def test_windows_adapter_with_faked_win32_names_a_store_app_not_its_frame_host(desktop):
    desktop.foreground = 0x300

    window = probe_of(desktop).foreground_window()

    assert (window.application, window.pid, window.window_id) == ("Calculator.exe", 1500, 0x300)


def test_windows_adapter_with_faked_win32_names_a_protected_process_from_the_process_list(desktop):
    desktop.foreground = 0x400

    window = probe_of(desktop).foreground_window()

    assert (window.title, window.application, window.path) == ("Task Manager", "Taskmgr.exe", "")
    assert desktop.open_handles == set()


def test_windows_adapter_with_faked_win32_reads_a_long_title_whole(desktop):
    desktop.windows[0x100].title = "x" * 5000 + " - Google Chrome"
    desktop.foreground = 0x100

    assert probe_of(desktop).foreground_window().title == "x" * 5000 + " - Google Chrome"


# --- password fields ----------------------------------------------------------------------------------
def test_windows_adapter_with_faked_win32_sees_a_password_edit_control(desktop):
    desktop.windows[0x201].style |= ES_PASSWORD
    desktop.foreground = 0x200

    assert probe_of(desktop).focused_field_is_password() is True


def test_windows_adapter_with_faked_win32_sees_an_ordinary_edit_control(desktop):
    desktop.foreground = 0x200

    assert probe_of(desktop).focused_field_is_password() is False


@pytest.mark.parametrize("class_name", ["WindowsForms10.EDIT.app.0.141b42a_r9_ad1", "RichEdit20W", "RICHEDIT50W"])
def test_windows_adapter_with_faked_win32_reads_the_password_style_of_edit_based_controls(desktop, class_name):
    desktop.windows[0x201].class_name = class_name
    desktop.windows[0x201].style |= ES_PASSWORD
    desktop.foreground = 0x200

    assert probe_of(desktop).focused_field_is_password() is True


def test_windows_adapter_with_faked_win32_cannot_tell_inside_a_browser(desktop):
    desktop.foreground = 0x100  # the focus is on Chrome's render widget: its fields are drawn by Chrome

    assert probe_of(desktop).focused_field_is_password() is None


def test_windows_adapter_with_faked_win32_cannot_tell_without_a_focused_control(desktop):
    desktop.foreground = 0x400  # its thread has no focused control

    assert probe_of(desktop).focused_field_is_password() is None


def test_windows_adapter_with_faked_win32_cannot_tell_without_a_foreground_window(desktop):
    desktop.foreground = 0

    assert probe_of(desktop).focused_field_is_password() is None


# --- processes and applications ---------------------------------------------------------------------
def test_windows_adapter_with_faked_win32_lists_processes_with_their_paths(desktop):
    processes = probe_of(desktop).running_processes()

    assert 0 not in processes  # the System Idle Process
    assert processes[1300] == ProcessInfo("notepad.exe", r"C:\Windows\System32\notepad.exe")
    assert processes[4] == ProcessInfo("System", "")  # cannot be opened: named, path unknown
    assert desktop.open_handles == set()  # the snapshot and every process handle were closed


def test_windows_adapter_with_faked_win32_opens_each_process_once_across_polls(desktop):
    probe = probe_of(desktop)

    probe.running_processes()
    probe.running_processes()

    assert desktop.calls.count("OpenProcess:1300") == 1


def test_windows_adapter_with_faked_win32_notices_a_reused_process_id(desktop):
    probe = probe_of(desktop)
    probe.running_processes()

    desktop.processes[1300] = Process("mspaint.exe", r"C:\Windows\System32\mspaint.exe")

    assert probe.running_processes()[1300] == ProcessInfo("mspaint.exe", r"C:\Windows\System32\mspaint.exe")


def test_windows_adapter_with_faked_win32_lists_nothing_when_the_snapshot_fails(desktop):
    probe = probe_of(desktop, CreateToolhelp32Snapshot=lambda flags, pid: INVALID_HANDLE_VALUE)

    assert probe.running_processes() == {}


def test_windows_adapter_with_faked_win32_counts_only_visible_unowned_titled_windows_as_applications(desktop):
    pids = probe_of(desktop).window_pids()

    # chrome, notepad, the frame host, Task Manager; not the hidden service window, not the owned dialog
    # (its owner, notepad, counts already) and not the untitled render child.
    assert pids == {1200, 1300, 1400, 1600}


# --- printing ----------------------------------------------------------------------------------------
def test_windows_adapter_with_faked_win32_lists_this_users_print_jobs_on_every_printer(desktop):
    desktop.printers = {
        "LIB-PRN1": [
            Job(7, "Essay.docx", "jsmith", pages=3),
            Job(8, "Someone else.pdf", "akhan", pages=1),
        ],
        r"\\printsrv\ART-COLOUR": [Job(12, "Poster.png", "JSMITH", pages=1, status=JOB_STATUS_PRINTED)],
        "Empty": [],
    }

    jobs = probe_of(desktop).print_jobs()

    assert jobs == [
        PrintJob(id="LIB-PRN1:7", document="Essay.docx", printer="LIB-PRN1", pages=3, user="jsmith", finished=False),
        PrintJob(
            id=r"\\printsrv\ART-COLOUR:12",
            document="Poster.png",
            printer=r"\\printsrv\ART-COLOUR",
            pages=1,
            user="JSMITH",
            finished=True,
        ),
    ]
    assert desktop.open_handles == set()  # every printer was closed


def test_windows_adapter_with_faked_win32_reports_unknown_pages_as_none(desktop):
    desktop.printers = {"LIB-PRN1": [Job(9, "Spooling.docx", "jsmith", pages=0)]}

    (job,) = probe_of(desktop).print_jobs()

    assert job.pages is None


def test_windows_adapter_with_faked_win32_lists_no_jobs_without_printers(desktop):
    assert probe_of(desktop).print_jobs() == []


def test_windows_adapter_with_faked_win32_skips_a_printer_that_will_not_open(desktop):
    desktop.printers = {"Gone": [Job(1, "a", "jsmith")], "LIB-PRN1": [Job(2, "b", "jsmith")]}

    def open_printer(name, handle_ref, defaults):
        return 0 if name == "Gone" else desktop.OpenPrinterW(name, handle_ref, defaults)

    jobs = probe_of(desktop, OpenPrinterW=open_printer).print_jobs()

    assert [job.id for job in jobs] == ["LIB-PRN1:2"]


# --- user and folders ---------------------------------------------------------------------------------
def test_windows_adapter_with_faked_win32_names_the_user_domain_backslash_name(desktop):
    assert probe_of(desktop).user_name() == "SCHOOL\\jsmith"


def test_windows_adapter_with_faked_win32_falls_back_to_the_environment_for_the_user(desktop, monkeypatch):
    desktop.sam_name = None
    monkeypatch.setenv("USERDOMAIN", "SCHOOL")
    monkeypatch.setenv("USERNAME", "jsmith")

    assert probe_of(desktop).user_name() == "SCHOOL\\jsmith"


def test_windows_adapter_with_faked_win32_finds_the_users_known_folders(desktop, tmp_path):
    documents, downloads = tmp_path / "Documents", tmp_path / "Downloads"
    documents.mkdir()
    downloads.mkdir()
    desktop.folders = {
        KNOWN_FOLDERS["Documents"]: str(documents),
        KNOWN_FOLDERS["Downloads"]: str(downloads),
        KNOWN_FOLDERS["Pictures"]: str(tmp_path / "does-not-exist"),
    }

    folders = probe_of(desktop).user_folders()

    assert folders == [documents, downloads]
    assert len(desktop.freed) == len(KNOWN_FOLDERS)  # CoTaskMemFree after every call, failed ones too


def test_windows_adapter_with_faked_win32_parses_known_folder_ids_as_guids():
    guid = GUID.parse(KNOWN_FOLDERS["Documents"])  # FDD39AD0-238F-46AF-ADB4-6C85480369C7

    assert (guid.Data1, guid.Data2, guid.Data3) == (0xFDD39AD0, 0x238F, 0x46AF)
    assert bytes(guid.Data4) == bytes.fromhex("ADB46C85480369C7")


def test_windows_adapter_with_faked_win32_reads_addresses_from_browser_titles_only(desktop):
    probe = probe_of(desktop)

    assert probe.browser_url(WindowInfo("example.org/page - Google Chrome", "chrome.exe", 1, 1)) == "example.org/page"
    assert probe.browser_url(WindowInfo("BBC News - Google Chrome", "chrome.exe", 1, 1)) is None


# --- the boundary itself ------------------------------------------------------------------------------
def test_windows_adapter_with_faked_win32_refuses_a_fake_for_a_function_it_does_not_use():
    with pytest.raises(TypeError, match="GetCursorPos"):
        Win32Api(GetCursorPos=lambda point: 1)


def test_windows_adapter_with_faked_win32_fails_loudly_for_a_function_not_faked_off_windows():
    api = Win32Api()

    with pytest.raises(NotImplementedError, match="GetForegroundWindow"):
        api.GetForegroundWindow()
