import sys

from retrievo.cli.main import main

sys.exit(main())
