"""Pages people use, as plain HTML/CSS/JS served from the package (no CDN: stations are offline)."""
