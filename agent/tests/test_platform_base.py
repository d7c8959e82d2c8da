"""Helpers both platform adapters share: which programs are browsers, page titles, addresses in titles."""

import pytest

from safeguard_agent.platform.base import browser_name, executable_stem, page_title, url_from_title


@pytest.mark.parametrize(
    ("application", "browser"),
    [
        ("chrome.exe", "Google Chrome"),
        ("CHROME.EXE", "Google Chrome"),
        ("msedge.exe", "Microsoft Edge"),
        ("firefox-esr", "Mozilla Firefox"),
        ("brave", "Brave"),
        ("opera.exe", "Opera"),
        (r"C:\Program Files\Mozilla Firefox\firefox.exe", "Mozilla Firefox"),
        ("winword.exe", None),
        ("xterm", None),
        ("", None),
    ],
)
def test_known_browsers_are_recognised_by_their_executable(application, browser):
    assert browser_name(application) == browser


def test_executable_stem_drops_folders_and_exe():
    assert executable_stem(r"C:\Windows\notepad.EXE") == "notepad"
    assert executable_stem("/usr/bin/firefox-esr") == "firefox-esr"


@pytest.mark.parametrize(
    ("title", "application", "page"),
    [
        ("BBC News - Home - Google Chrome", "chrome.exe", "BBC News - Home"),
        ("Inbox — Mozilla Firefox", "firefox", "Inbox"),
        ("Maths homework - Personal - Microsoft\u200b Edge", "msedge.exe", "Maths homework - Personal"),
        ("New Tab - Google Chrome", "chrome.exe", "New Tab"),
        ("Homework.docx - Word", "winword.exe", "Homework.docx - Word"),  # not a browser: left alone
        ("Google Chrome", "chrome.exe", "Google Chrome"),
    ],
)
def test_page_title_is_the_window_title_without_the_browser_name(title, application, page):
    assert page_title(title, application) == page


@pytest.mark.parametrize(
    ("title", "application", "url"),
    [
        ("example.org/forum/thread-12 - Google Chrome", "chrome.exe", "example.org/forum/thread-12"),
        ("www.bbc.co.uk - Chromium", "chromium", "www.bbc.co.uk"),
        ("see https://x.example/a?b=1 - Mozilla Firefox", "firefox", "https://x.example/a?b=1"),
        ("BBC News - Home - Google Chrome", "chrome.exe", None),  # a page title says nothing of the address
        ("report.pdf - Google Chrome", "chrome.exe", None),  # a file name, not a host
        ("example.org - Notepad", "notepad.exe", None),  # only browsers show addresses
    ],
)
def test_an_address_is_read_from_a_browser_title_only_when_the_title_shows_one(title, application, url):
    assert url_from_title(title, application) == url
