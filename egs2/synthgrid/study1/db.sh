# db.sh — corpus location of the synthetic GRID-like corpus (generated at stage 1
# by local/data.sh; relative paths are relative to this recipe directory).
SYNTHGRID=${SYNTHGRID:-downloads/synthgrid}
