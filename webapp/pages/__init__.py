"""HTML pages, one module per object. Thin: validate, call one service or selector, render."""
