# JupyterHub for the revmodel apps: a password login, one Voila server per signed-in user.
# Run: jupyterhub -f deploy/jupyterhub_config.py   (README, "Apps for a team").
# Settings: REVMODEL_HUB_PORT (8000), REVMODEL_HUB_PASSWORDS (build/hub/passwords),
# REVMODEL_HUB_STATE (build/hub), REVMODEL_HOME, REVMODEL_TEAM_MAP, REVMODEL_OVERRIDES_URL.
from revmodel.apps.hub import configure

configure(c)  # noqa: F821 - `c` is the config object JupyterHub provides
