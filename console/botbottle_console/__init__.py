# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bot-bottle's operator console (Textual): watch bottles, decide their asks. Run: make console."""
