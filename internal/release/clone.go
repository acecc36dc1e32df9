package release

import (
	"reflect"
	"time"
)

var timeType = reflect.TypeFor[time.Time]()

// deepCopy returns a copy of *v that shares no map, slice or pointer
// with it, so the copy can be changed freely. It copies what encoding/json
// fills (exported fields, maps, slices, pointers, interfaces); unexported
// fields are copied by value (time.Time's location is shared, and never
// changed; a monotonic clock reading is dropped, as decoding drops it).
// The engine keeps decoded and committed releases and hands each
// reconcile a copy (releaseCache), which costs a fraction of decoding one
// again.
func deepCopy[T any](v *T) *T {
	out := new(T)
	copyValue(reflect.ValueOf(out).Elem(), reflect.ValueOf(v).Elem())
	return out
}

func copyValue(dst, src reflect.Value) {
	switch src.Kind() {
	case reflect.Pointer:
		if src.IsNil() {
			dst.SetZero()
			return
		}
		n := reflect.New(src.Type().Elem())
		copyValue(n.Elem(), src.Elem())
		dst.Set(n)
	case reflect.Struct:
		if src.Type() == timeType {
			// As decoding gives it: no monotonic reading, which a
			// committed release's times may carry.
			dst.Set(reflect.ValueOf(src.Interface().(time.Time).Round(0)))
			return
		}
		dst.Set(src)
		for i := range src.NumField() {
			if f := dst.Field(i); f.CanSet() && deep(f.Kind()) {
				copyValue(f, src.Field(i))
			}
		}
	case reflect.Slice:
		if src.IsNil() {
			dst.SetZero()
			return
		}
		n := reflect.MakeSlice(src.Type(), src.Len(), src.Len())
		if deep(src.Type().Elem().Kind()) {
			for i := range src.Len() {
				copyValue(n.Index(i), src.Index(i))
			}
		} else {
			reflect.Copy(n, src)
		}
		dst.Set(n)
	case reflect.Map:
		if src.IsNil() {
			dst.SetZero()
			return
		}
		n := reflect.MakeMapWithSize(src.Type(), src.Len())
		elem := src.Type().Elem()
		for it := src.MapRange(); it.Next(); {
			v := reflect.New(elem).Elem()
			copyValue(v, it.Value())
			n.SetMapIndex(it.Key(), v)
		}
		dst.Set(n)
	case reflect.Interface:
		if src.IsNil() {
			dst.SetZero()
			return
		}
		v := reflect.New(src.Elem().Type()).Elem()
		copyValue(v, src.Elem())
		dst.Set(v)
	case reflect.Array:
		for i := range src.Len() {
			copyValue(dst.Index(i), src.Index(i))
		}
	default:
		dst.Set(src)
	}
}

// deep says whether a value of kind k may share memory when copied.
func deep(k reflect.Kind) bool {
	switch k {
	case reflect.Pointer, reflect.Struct, reflect.Slice, reflect.Map, reflect.Interface, reflect.Array:
		return true
	}
	return false
}
