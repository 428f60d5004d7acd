"""Report stage: royalty statements, owner / top / evidence reports over the report.* views."""
