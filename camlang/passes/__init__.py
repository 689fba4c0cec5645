"""IR passes. Each keeps `camlang.frontend.ir.verify` true."""
