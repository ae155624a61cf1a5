"""Google Drive's web pages in front of a shared file: what :mod:`dnnlib.downloads` needs to get past them.

Drive answers a download link for a large file with a "cannot scan this file for
viruses" page; the file itself comes from that page's form (or, on older pages, a link
carrying ``confirm=``). Drive may also answer with a quota page. Nothing else is read.
"""

import html.parser
import urllib.parse
from typing import Optional

from dnnlib import errors


class DrivePageError(errors.DownloadError):
    """A Drive page that does not lead to the file; ``str(err)`` says why, in one line."""


def is_drive_page(page_url: str, text: str) -> bool:
    """Whether an HTML answer comes from Google Drive (by its host, or by what the page says)."""
    host = urllib.parse.urlsplit(page_url).netloc.lower()
    return 'google' in host or 'Google Drive' in text


def next_url(page_url: str, text: str) -> str:
    """The address that fetches the file after the Drive page ``text`` found at ``page_url``.

    Raises :class:`DrivePageError` for a quota page, or a page with no way on
    (the file is not shared publicly, or Drive changed its pages).
    """
    lowered = text.lower()
    if 'quota exceeded' in lowered or 'too many users' in lowered:
        raise DrivePageError('Google Drive download quota exceeded; try again later or use another source')
    scan = _PageScan()
    try:
        scan.feed(text)
        scan.close()
    except Exception:  # Half a page (we read at most the first MiB) may still hold the form.
        pass
    for form in scan.forms:
        if form['id'] == 'download-form' or any(name == 'confirm' for name, _ in form['fields']):
            action = urllib.parse.urljoin(page_url, form['action'] or page_url)
            return _with_query(action, form['fields'])
    for href in scan.links:
        if 'confirm=' in href:
            return urllib.parse.urljoin(page_url, href)
    raise DrivePageError('Google Drive returned a web page instead of the file '
                         '(not shared publicly, or the page format changed)')


class _PageScan(html.parser.HTMLParser):
    """The forms (action, hidden fields) and link targets of a page."""

    def __init__(self):
        super().__init__()
        self.forms = []
        self.links = []
        self._form: Optional[dict] = None

    def handle_starttag(self, tag, attrs):
        attrs = {k: (v or '') for k, v in attrs}
        if tag == 'form':
            self._form = dict(id=attrs.get('id', ''), action=attrs.get('action', ''), fields=[])
            self.forms.append(self._form)
        elif tag == 'input' and self._form is not None and attrs.get('name'):
            if attrs.get('type', 'text').lower() == 'hidden':
                self._form['fields'].append((attrs['name'], attrs.get('value', '')))
        elif tag == 'a' and attrs.get('href'):
            self.links.append(attrs['href'])

    def handle_endtag(self, tag):
        if tag == 'form':
            self._form = None


def _with_query(url, extra):
    """``url`` with the query parameters in ``extra`` (pairs) set, replacing any of the same name."""
    parts = urllib.parse.urlsplit(url)
    names = {k for k, _ in extra}
    query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True) if k not in names]
    query += list(extra)
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
