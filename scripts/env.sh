# Source me: exports XGBOOST_LIB_DIR for cargo (fetching the library on first use).
_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
XGBOOST_LIB_DIR=$(bash "$_here/xgboost-lib.sh") || return 1
export XGBOOST_LIB_DIR
unset _here
