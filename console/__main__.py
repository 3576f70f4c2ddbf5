# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``.venv/bin/python console [-i INVENTORY]`` from the checkout (installed: ``python <collections
path>/ansible_collections/botbottle/bottle/console``): this directory is then on the path."""

from __future__ import annotations

import sys

from botbottle_console.cli import main

if __name__ == "__main__":
    sys.exit(main())
