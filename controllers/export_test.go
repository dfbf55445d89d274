package controllers

// MemoizedSecrets is how many Secrets the reconciler's memo holds (tests only).
func (r *RedisConnectionReconciler) MemoizedSecrets() int { return r.secrets.size() }
