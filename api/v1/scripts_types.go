package v1

// LuaScript is a Lua script apps call by name (node-redis createCluster/createClient
// "scripts"; pkg/client Client.Run, with EVALSHA and the EVAL fallback).
type LuaScript struct {
	// name is what apps call the script by (a JavaScript property in node-redis).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z_][A-Za-z0-9_]*$')",message="script name must be letters, digits and '_', not starting with a digit"
	Name string `json:"name"`

	// lua is the script (node-redis SCRIPT). At most 16 KiB: 16 scripts and 4 libraries of
	// 64 KiB fit config.json's 1 MiB.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=16384
	Lua string `json:"lua"`

	// numberOfKeys is how many of a call's leading arguments are keys (node-redis
	// NUMBER_OF_KEYS): they route the call in Cluster mode. Default 0.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1024
	NumberOfKeys int32 `json:"numberOfKeys,omitempty"`

	// readOnly runs the script with EVALSHA_RO/EVAL_RO (node-redis IS_READ_ONLY).
	// +optional
	ReadOnly bool `json:"readOnly,omitempty"`
}

// FunctionLibrary is a Redis function library apps call the functions of (node-redis
// "functions"; pkg/client FCall). pkg/client loads it with FUNCTION LOAD REPLACE on every
// master; node-redis apps load it themselves (docs/consuming.md).
// +kubebuilder:validation:XValidation:rule="self.code.startsWith('#!lua name=' + self.name + '\\n') || self.code.startsWith('#!lua name=' + self.name + ' ')",message="code must start with the line '#!lua name=<name>' naming this library"
type FunctionLibrary struct {
	// name is the library's name, as its code's first line declares it.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z_][A-Za-z0-9_]*$')",message="library name must be letters, digits and '_', not starting with a digit"
	Name string `json:"name"`

	// code is the library ("#!lua name=<name>" and its register_function calls). At most
	// 64 KiB.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=65536
	Code string `json:"code"`

	// functions are the functions apps call (node-redis needs each declared).
	// +required
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	Functions []LibraryFunction `json:"functions"`
}

// LibraryFunction declares one function of a library.
type LibraryFunction struct {
	// name is the function's name as the library registers it.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z_][A-Za-z0-9_]*$')",message="function name must be letters, digits and '_', not starting with a digit"
	Name string `json:"name"`

	// numberOfKeys is how many leading arguments are keys (node-redis NUMBER_OF_KEYS).
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1024
	NumberOfKeys int32 `json:"numberOfKeys,omitempty"`

	// readOnly calls it with FCALL_RO (node-redis IS_READ_ONLY); the library must register it
	// with the no-writes flag.
	// +optional
	ReadOnly bool `json:"readOnly,omitempty"`
}
