
(function(){
var table=document.getElementById('findings');if(!table)return;
var body=table.tBodies[0],rows=Array.prototype.slice.call(body.rows);
var q=document.getElementById('filter'),st=document.getElementById('status');
var count=document.getElementById('shown');
function apply(){var t=q.value.toLowerCase(),s=st.value,n=0;
rows.forEach(function(r){var ok=(!s||r.getAttribute('data-status')===s)&&
(!t||r.textContent.toLowerCase().indexOf(t)>=0);r.hidden=!ok;if(ok)n++;});
count.textContent=String(n);}
q.addEventListener('input',apply);st.addEventListener('change',apply);
Array.prototype.forEach.call(table.tHead.rows[0].cells,function(th,i){
th.addEventListener('click',function(){
var asc=th.getAttribute('aria-sort')!=='ascending';
Array.prototype.forEach.call(table.tHead.rows[0].cells,function(o){o.removeAttribute('aria-sort');});
th.setAttribute('aria-sort',asc?'ascending':'descending');
var num=th.getAttribute('data-type')==='number';
rows.sort(function(a,b){var x=a.cells[i].getAttribute('data-sort')||a.cells[i].textContent,
y=b.cells[i].getAttribute('data-sort')||b.cells[i].textContent;
var c=num?(parseFloat(x)||0)-(parseFloat(y)||0):x.localeCompare(y);return asc?c:-c;});
rows.forEach(function(r){body.appendChild(r);});});});
apply();})();
