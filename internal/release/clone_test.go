package release

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

var timeType = reflect.TypeFor[time.Time]()

// fill sets every exported field reachable from v to a value no other
// field has: two entries in every map and slice, every pointer set, every
// time with a monotonic clock reading. A field fill cannot set (an
// interface, an unexported field outside time.Time) fails the test, as
// deepCopy could not copy it either.
func fill(t testing.TB, v reflect.Value, n *int, path string) {
	t.Helper()
	*n++
	switch v.Kind() {
	case reflect.String:
		v.SetString("s" + strconv.Itoa(*n))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(*n))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(*n))
	case reflect.Float32, reflect.Float64:
		v.SetFloat(float64(*n) + 0.5)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fill(t, p.Elem(), n, path)
		v.Set(p)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			fill(t, s.Index(i), n, path+"[]")
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		for range 2 {
			k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
			fill(t, k, n, path+"[key]")
			fill(t, e, n, path+"[]")
			m.SetMapIndex(k, e)
		}
		v.Set(m)
	case reflect.Struct:
		if v.Type() == timeType {
			// time.Now carries a monotonic reading; Add keeps it.
			v.Set(reflect.ValueOf(time.Now().Add(time.Duration(*n) * time.Second)))
			return
		}
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if !f.IsExported() {
				t.Fatalf("%s.%s is unexported: deepCopy copies it by value only", path, f.Name)
			}
			fill(t, v.Field(i), n, path+"."+f.Name)
		}
	default:
		t.Fatalf("%s is a %s: fill (and deepCopy) do not know how to copy it", path, v.Kind())
	}
}

// monotonic returns the path of a time that still carries a monotonic
// clock reading, or "".
func monotonic(v reflect.Value, path string) string {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			return monotonic(v.Elem(), path)
		}
	case reflect.Slice:
		for i := range v.Len() {
			if p := monotonic(v.Index(i), path+"[]"); p != "" {
				return p
			}
		}
	case reflect.Map:
		for it := v.MapRange(); it.Next(); {
			if p := monotonic(it.Value(), path+"[]"); p != "" {
				return p
			}
		}
	case reflect.Struct:
		if v.Type() == timeType {
			if strings.Contains(v.Interface().(time.Time).String(), " m=") {
				return path
			}
			return ""
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				if p := monotonic(v.Field(i), path+"."+v.Type().Field(i).Name); p != "" {
					return p
				}
			}
		}
	}
	return ""
}

// stripMonotonic drops the monotonic readings of every time in v.
func stripMonotonic(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			stripMonotonic(v.Elem())
		}
	case reflect.Slice:
		for i := range v.Len() {
			stripMonotonic(v.Index(i))
		}
	case reflect.Map:
		for it := v.MapRange(); it.Next(); {
			e := reflect.New(it.Value().Type()).Elem()
			e.Set(it.Value())
			stripMonotonic(e)
			v.SetMapIndex(it.Key(), e)
		}
	case reflect.Struct:
		if v.Type() == timeType {
			v.Set(reflect.ValueOf(v.Interface().(time.Time).Round(0)))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				stripMonotonic(v.Field(i))
			}
		}
	}
}

// Every field of a Release, filled by reflection (so a field added later
// is filled too): the copy equals the original but for the monotonic
// clock readings it drops, shares none of its maps, slices or pointers,
// and carries no monotonic reading. A new map, slice or pointer field
// that deepCopy does not copy fails here, naming the field.
func TestDeepCopyCoversEveryField(t *testing.T) {
	var orig Release
	n := 0
	fill(t, reflect.ValueOf(&orig).Elem(), &n, "Release")
	cp := deepCopy(&orig)
	if p := shared(reflect.ValueOf(*cp), reflect.ValueOf(orig), "Release"); p != "" {
		t.Fatalf("the copy shares %s with the original", p)
	}
	if p := monotonic(reflect.ValueOf(*cp), "Release"); p != "" {
		t.Fatalf("the copy's %s keeps a monotonic clock reading (a decoded release has none)", p)
	}
	want := orig
	stripMonotonic(reflect.ValueOf(&want).Elem())
	if !reflect.DeepEqual(*cp, want) {
		t.Fatalf("the copy differs from the original (a field deepCopy does not copy?)\ncopy: %+v\norig: %+v", *cp, want)
	}
	// Nil and empty stay as they were: JSON tells them apart (null, []).
	var zero Release
	if cp := deepCopy(&zero); !reflect.DeepEqual(*cp, zero) {
		t.Fatalf("the copy of an empty release differs: %+v", *cp)
	}
}

func BenchmarkDeepCopy(b *testing.B) {
	var r Release
	n := 0
	fill(b, reflect.ValueOf(&r).Elem(), &n, "Release")
	b.ReportAllocs()
	for b.Loop() {
		deepCopy(&r)
	}
}
