"""A file's page cache: which page holds each file page (shmem and regular files alike).

A file-backed VMA maps file page ``vm_pgoff + (vpn - vm_start)``.  A fault on it looks the
page up here (``filemap_fault`` / ``shmem_fault``) and allocates a zeroed one if the file has
none yet; the page cache holds one reference of its own, so unmapping never frees a file
page.  Anonymous shared memory (MAP_SHARED | MAP_ANONYMOUS) is shmem: a file too.

``pwrite`` and ``pread`` write and read the file through the cache (one token per page, see
``PageAllocator.data``).  Nothing here is a scheduling point: callers take one around their
own step.
"""

from __future__ import annotations

from concsim.kernel._pagealloc import PAGE_DATA, PageAllocator


class PageCacheFile:
    """``struct address_space`` reduced to an index -> pfn map."""

    def __init__(self, pages: PageAllocator, name: str, npages: int) -> None:
        self.pages = pages
        self.name = name
        self.npages = npages
        self.i_pages: dict[int, int] = {}

    def find_or_create_page(self, index: int) -> int:
        """The pfn caching file page ``index`` (allocated zeroed if absent), or -1 on OOM."""
        pfn = self.i_pages.get(index)
        if pfn is None:
            pfn = self.pages.alloc_page()
            if pfn < 0:
                return -1
            self.i_pages[index] = pfn
        return pfn

    def pwrite(self, index: int, value: int) -> bool:
        pfn = self.find_or_create_page(index)
        if pfn < 0:
            return False
        self.pages.rt.access(PAGE_DATA)
        self.pages.data[pfn] = value
        return True

    def pread(self, index: int) -> int:
        pfn = self.i_pages.get(index)
        self.pages.rt.access(PAGE_DATA, write=False)
        return 0 if pfn is None else int(self.pages.data[pfn])
