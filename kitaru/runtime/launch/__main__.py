import sys

from kitaru.runtime.launch._main import main

sys.exit(main())
