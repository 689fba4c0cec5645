"""IR passes. Each keeps `camlang.ir.verify` true."""
